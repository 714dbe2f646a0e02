"""azure-keyvault-secrets against the local vault."""

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from conftest import ADMIN_CLIENT_ID, READER_CLIENT_ID, VAULT_URL, admin, refused_restores


def client(client_id=ADMIN_CLIENT_ID, **kwargs):
    return SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=client_id), **kwargs)


def test_set_get_versions_and_delete():
    secrets = client()
    first = secrets.set_secret("py-secret", "one", content_type="text/plain", tags={"env": "test"})
    assert first.value == "one"
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"env": "test"}
    assert first.properties.vault_url == VAULT_URL
    for value in ("two", "three", "four", "five"):
        secrets.set_secret("py-secret", value)

    assert secrets.get_secret("py-secret").value == "five"
    assert secrets.get_secret("py-secret", first.properties.version).value == "one"

    versions = list(secrets.list_properties_of_secret_versions("py-secret", max_page_size=2))
    assert len(versions) == 5
    assert first.properties.version in {v.version for v in versions}
    names = {p.name for p in secrets.list_properties_of_secrets()}
    assert {"py-secret", "seeded"} <= names

    updated = secrets.update_secret_properties("py-secret", enabled=False)
    assert updated.enabled is False
    with pytest.raises(HttpResponseError) as disabled:
        secrets.get_secret("py-secret")
    assert disabled.value.status_code == 403
    assert disabled.value.error.code == "Forbidden"
    assert disabled.value.error.message == "Operation get is not allowed on a disabled secret."

    deleted = secrets.begin_delete_secret("py-secret").result()
    assert deleted.name == "py-secret"
    assert deleted.recovery_id == f"{VAULT_URL}/deletedsecrets/py-secret"
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("py-secret")
    secrets.purge_deleted_secret("py-secret")


def test_forbidden_and_not_found():
    reader = client(READER_CLIENT_ID)
    assert reader.get_secret("seeded").value == "from-the-seed"
    with pytest.raises(ResourceNotFoundError) as missing:
        reader.get_secret("does-not-exist")
    assert missing.value.error.code == "SecretNotFound"
    assert missing.value.error.message.startswith(
        "A secret with (name/id) does-not-exist was not found in this key vault.")
    with pytest.raises(HttpResponseError) as forbidden:
        list(reader.list_properties_of_secrets())
    assert forbidden.value.status_code == 403
    assert forbidden.value.error.code == "Forbidden"
    assert forbidden.value.error.innererror["code"] == "ForbiddenByRbac"
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'" in forbidden.value.error.message
    with pytest.raises(HttpResponseError) as cannot_set:
        reader.set_secret("nope", "x")
    assert cannot_set.value.status_code == 403


def test_throttling_reaches_the_caller_without_retries_and_is_retried_otherwise():
    strict = client(retry_total=0)
    strict.get_secret("seeded")  # the challenge round trip: the token is cached from here on
    admin("PUT", "/faults/pyvault", {"statuses": [429]})
    with pytest.raises(HttpResponseError) as throttled:
        strict.get_secret("seeded")
    assert throttled.value.status_code == 429
    assert throttled.value.error.code == "Throttled"
    assert throttled.value.error.message.startswith(
        "Request was not processed because too many requests were received.")

    admin("PUT", "/faults/pyvault", {"statuses": [503]})
    assert client(retry_backoff_factor=0.1).get_secret("seeded").value == "from-the-seed"


class _WrongAudienceCredential:
    """Hands out real emulator tokens, but for Azure Resource Manager instead of Key Vault."""

    def __init__(self):
        self._inner = ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID)
        self.requests = 0

    def get_token(self, *scopes, **kwargs):
        self.requests += 1
        return self._inner.get_token("https://management.azure.com/.default")


def test_a_token_the_vault_refuses_is_a_401_after_the_challenge():
    credential = _WrongAudienceCredential()
    with pytest.raises(ClientAuthenticationError) as refused:
        SecretClient(VAULT_URL, credential, retry_total=0).get_secret("seeded")
    assert refused.value.status_code == 401
    assert refused.value.error.code == "Unauthorized"
    assert refused.value.error.message.startswith("AKV10022: Invalid audience.")
    assert credential.requests >= 1


def test_next_link_names_the_port_as_key_vault_writes_it():
    token = ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID).get_token("https://vault.azure.net/.default")
    secrets = client()
    secrets.set_secret("paged-a", "a")
    secrets.set_secret("paged-b", "b")
    page = requests.get(f"{VAULT_URL}/secrets", params={"api-version": "7.4", "maxresults": "1"},
                        headers={"Authorization": f"Bearer {token.token}"}, timeout=10).json()
    assert page["nextLink"].startswith(f"{VAULT_URL}:443/secrets?api-version=7.4&$skiptoken=")
    assert page["nextLink"].endswith("&maxresults=1")
    # The SDK follows such links page by page.
    names = {p.name for p in secrets.list_properties_of_secrets(max_page_size=1)}
    assert {"paged-a", "paged-b", "seeded"} <= names


def test_backup_and_restore():
    secrets = client()
    for value in ("one", "two"):
        secrets.set_secret("py-backup", value)
    before = {p.version for p in secrets.list_properties_of_secret_versions("py-backup")}
    backup = secrets.backup_secret("py-backup")
    assert isinstance(backup, bytes) and backup

    kept = refused_restores(secrets, "secret", "py-backup", backup)
    assert "deleted but recoverable" in kept.error.message

    restored = secrets.restore_secret_backup(backup)
    assert restored.name == "py-backup"
    assert secrets.get_secret("py-backup").value == "two"
    assert {p.version for p in secrets.list_properties_of_secret_versions("py-backup")} == before

    with pytest.raises(HttpResponseError) as malformed:
        secrets.restore_secret_backup(bytes(64))
    assert malformed.value.status_code == 400
    assert malformed.value.error.message == "Backup blob contains invalid or corrupt version."
    with pytest.raises(ResourceNotFoundError):
        secrets.backup_secret("py-never-set")
    secrets.begin_delete_secret("py-backup").result()
    secrets.purge_deleted_secret("py-backup")
