"""azure-keyvault-secrets against the local vault."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from conftest import ADMIN_CLIENT_ID, READER_CLIENT_ID, VAULT_URL, admin


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
    with pytest.raises(HttpResponseError) as forbidden:
        list(reader.list_properties_of_secrets())
    assert forbidden.value.status_code == 403
    assert forbidden.value.error.code == "Forbidden"
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

    admin("PUT", "/faults/pyvault", {"statuses": [503]})
    assert client(retry_backoff_factor=0.1).get_secret("seeded").value == "from-the-seed"
