"""Soft delete and recovery that complete later, as Key Vault's do, against the official SDKs'
pollers (the `deletionDelayMs` fault); recover and purge as permissions of their own; and
certificate backup and restore."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.secrets import SecretClient

from conftest import ADMIN_CLIENT_ID, READER_CLIENT_ID, VAULT_URL, admin, refused_restores

DELAY_MS = 1500


def secrets_client(client_id=ADMIN_CLIENT_ID):
    return SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=client_id))


def delay_deletions():
    admin("PUT", "/faults/pyvault", {"deletionDelayMs": DELAY_MS})


def wait_out(poller, read_meanwhile):
    """While `poller`'s operation is in progress `read_meanwhile()` finds nothing; `wait()` (the
    Key Vault pollers' `result()` does not wait) polls until it completes. Returns the result."""
    with pytest.raises(ResourceNotFoundError):
        read_meanwhile()
    poller.wait()
    assert poller.done()
    return poller.result()


def test_the_secret_pollers_wait_out_a_delayed_delete_and_recovery():
    secrets = secrets_client()
    secrets.set_secret("py-slow", "kept")
    delay_deletions()

    deleting = secrets.begin_delete_secret("py-slow")
    # In progress: not yet among the deleted secrets, and the name cannot be written.
    with pytest.raises(ResourceNotFoundError):
        secrets.get_deleted_secret("py-slow")
    with pytest.raises(HttpResponseError) as busy:
        secrets.set_secret("py-slow", "other")
    assert busy.value.status_code == 409
    assert busy.value.error.message == "Secret is currently being deleted."
    assert busy.value.error.innererror["code"] == "ObjectIsBeingDeleted"
    deleting.wait()
    assert deleting.done()
    assert deleting.result().recovery_id == f"{VAULT_URL}/deletedsecrets/py-slow"
    assert secrets.get_deleted_secret("py-slow").deleted_date is not None

    wait_out(secrets.begin_recover_deleted_secret("py-slow"), lambda: secrets.get_secret("py-slow"))
    assert secrets.get_secret("py-slow").value == "kept"

    admin("DELETE", "/faults/pyvault")
    secrets.begin_delete_secret("py-slow").result()
    secrets.purge_deleted_secret("py-slow")


def test_the_certificate_pollers_wait_out_a_delayed_delete_and_recovery():
    certs = CertificateClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    created = certs.begin_create_certificate("py-slow-cert", CertificatePolicy.get_default()).result()
    delay_deletions()

    deleted = wait_out(
        certs.begin_delete_certificate("py-slow-cert"),
        lambda: certs.get_deleted_certificate("py-slow-cert"),
    )
    assert deleted.properties.x509_thumbprint == created.properties.x509_thumbprint
    recovered = wait_out(
        certs.begin_recover_deleted_certificate("py-slow-cert"),
        lambda: certs.get_certificate("py-slow-cert"),
    )
    assert recovered.properties.x509_thumbprint == created.properties.x509_thumbprint

    assert certs.get_certificate("py-slow-cert").properties.enabled

    admin("DELETE", "/faults/pyvault")
    certs.begin_delete_certificate("py-slow-cert").result()
    certs.purge_deleted_certificate("py-slow-cert")


def test_recover_and_purge_are_named_in_the_403():
    reader = secrets_client(READER_CLIENT_ID)
    for call, action in (
        (reader.purge_deleted_secret, "Microsoft.KeyVault/vaults/secrets/purge/action"),
        (reader.begin_recover_deleted_secret, "Microsoft.KeyVault/vaults/secrets/recover/action"),
    ):
        with pytest.raises(HttpResponseError) as refused:
            call("py-anything")
        assert refused.value.status_code == 403
        assert f"Action: '{action}'" in str(refused.value)


def test_certificate_backup_and_restore():
    certs = CertificateClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    created = certs.begin_create_certificate("py-cert-backup", CertificatePolicy.get_default()).result()
    backup = certs.backup_certificate("py-cert-backup")
    assert isinstance(backup, bytes) and backup

    kept = refused_restores(certs, "certificate", "py-cert-backup", backup)
    assert kept.error.innererror["code"] == "ObjectIsDeletedButRecoverable"

    restored = certs.restore_certificate_backup(backup)
    assert restored.name == "py-cert-backup"
    assert restored.properties.x509_thumbprint == created.properties.x509_thumbprint
    assert restored.policy is not None
    assert SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID)).get_secret(
        "py-cert-backup"
    ).properties.managed

    with pytest.raises(HttpResponseError) as malformed:
        certs.restore_certificate_backup(bytes(64))
    assert malformed.value.status_code == 400
    with pytest.raises(ResourceNotFoundError):
        certs.backup_certificate("py-never-made")
    certs.begin_delete_certificate("py-cert-backup").wait()
    certs.purge_deleted_certificate("py-cert-backup")
