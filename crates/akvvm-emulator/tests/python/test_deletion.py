"""Soft delete and recovery that complete later, as Key Vault's do, against the official SDKs'
pollers (the `deletionDelayMs` fault); recover and purge as permissions of their own; and
certificate backup and restore."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.secrets import SecretClient

from conftest import ADMIN_CLIENT_ID, READER_CLIENT_ID, VAULT_URL, admin

DELAY_MS = 1500


def secrets_client(client_id=ADMIN_CLIENT_ID):
    return SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=client_id))


def delay_deletions():
    admin("PUT", "/faults/pyvault", {"deletionDelayMs": DELAY_MS})


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

    recovering = secrets.begin_recover_deleted_secret("py-slow")
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("py-slow")
    recovering.wait()
    assert recovering.done()
    assert secrets.get_secret("py-slow").value == "kept"

    admin("DELETE", "/faults/pyvault")
    secrets.begin_delete_secret("py-slow").result()
    secrets.purge_deleted_secret("py-slow")


def test_the_certificate_pollers_wait_out_a_delayed_delete_and_recovery():
    certs = CertificateClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    created = certs.begin_create_certificate("py-slow-cert", CertificatePolicy.get_default()).result()
    delay_deletions()

    deleting = certs.begin_delete_certificate("py-slow-cert")
    with pytest.raises(ResourceNotFoundError):
        certs.get_deleted_certificate("py-slow-cert")
    # The Key Vault pollers' result() does not wait; wait() polls until the delete completes.
    deleting.wait()
    assert deleting.done()
    deleted = deleting.result()
    assert deleted.properties.x509_thumbprint == created.properties.x509_thumbprint

    recovering = certs.begin_recover_deleted_certificate("py-slow-cert")
    with pytest.raises(ResourceNotFoundError):
        certs.get_certificate("py-slow-cert")
    recovering.wait()
    assert recovering.done()
    recovered = recovering.result()
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

    # The name is in use, then kept deleted: both refused with a 409.
    with pytest.raises(ResourceExistsError):
        certs.restore_certificate_backup(backup)
    certs.begin_delete_certificate("py-cert-backup").wait()
    with pytest.raises(ResourceExistsError) as kept:
        certs.restore_certificate_backup(backup)
    assert kept.value.error.innererror["code"] == "ObjectIsDeletedButRecoverable"
    certs.purge_deleted_certificate("py-cert-backup")

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
