"""Points the official Azure SDKs at the local vault started by run.sh.

Only two things are configured, as a real client of Key Vault would be: the CA to trust
(REQUESTS_CA_BUNDLE) and the host mapping (vault host names under `.vault.azure.net` and
`.vault.localhost`, and `localhost`, resolve to the emulator's HTTPS listener; clients keep real
URLs such as https://pyvault.vault.azure.net, so the SDKs' challenge-resource verification stays
on).
"""

import os
import socket

import pytest
import requests

HTTPS_HOST, HTTPS_PORT = os.environ["AKVVM_EMULATOR_HTTPS"].rsplit(":", 1)
IMDS = os.environ["AKVVM_EMULATOR_IMDS"]
CA = os.environ["AKVVM_EMULATOR_CA"]

TENANT = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
ADMIN_CLIENT_ID = "5b3f4a10-0000-4000-8000-00000000a001"
READER_CLIENT_ID = "5b3f4a10-0000-4000-8000-00000000a002"
VAULT_URL = "https://pyvault.vault.azure.net"
AUTHORITY = "https://localhost"

_real_getaddrinfo = socket.getaddrinfo


def _mapped_getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name and (name.endswith((".vault.azure.net", ".vault.localhost")) or name == "localhost"):
        return _real_getaddrinfo(HTTPS_HOST, int(HTTPS_PORT), *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _mapped_getaddrinfo
os.environ["REQUESTS_CA_BUNDLE"] = CA
# ManagedIdentityCredential's documented IMDS override.
os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = f"http://{IMDS}"


def admin(method, path, body=None):
    """Calls the emulator's admin API."""
    response = requests.request(method, f"{AUTHORITY}/_emulator{path}", json=body, timeout=30)
    assert response.status_code < 300, f"admin {method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def refused_restores(client, kind, name, backup):
    """A backup of the `kind` (`secret`, `certificate`) `name` restores neither onto the name in
    use (Key Vault's 409 naming the backed-up version) nor onto it kept deleted (409 both times);
    deletes and purges it on the way. Returns the
    second error."""
    from azure.core.exceptions import ResourceExistsError

    restore = getattr(client, f"restore_{kind}_backup")
    with pytest.raises(ResourceExistsError) as in_use:
        restore(backup)
    # Key Vault's words (azure-sdk-for-python recording
    # test_secrets_client.pyTestSecretClienttest_backup_restore[7.3].json).
    assert in_use.value.error.code == "Conflict"
    assert in_use.value.error.message.startswith(f"There was a conflict restoring the {kind} '{VAULT_URL}/{kind}s/{name}/")
    getattr(client, f"begin_delete_{kind}")(name).wait()
    with pytest.raises(ResourceExistsError) as kept:
        restore(backup)
    getattr(client, f"purge_deleted_{kind}")(name)
    return kept.value


@pytest.fixture(autouse=True)
def _no_faults():
    admin("DELETE", "/faults/pyvault")
    yield
    admin("DELETE", "/faults/pyvault")
