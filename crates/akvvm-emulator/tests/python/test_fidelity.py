"""The local vault answers as the real services do where azure-identity and azure-keyvault-secrets
depend on it (issue 13; the Rust side is tests/fidelity.rs):

- IMDS accepts its token path with a trailing slash, refuses an unknown resource with
  `invalid_resource` (AADSTS500011) and a request carrying `X-Forwarded-For`, and answers 404
  while booting, which ManagedIdentityCredential retries;
- the 401 challenge names the Key Vault resource of the vault host's DNS suffix, so the SDK's
  challenge-resource check passes for `*.vault.localhost`;
- the versions of an unknown secret or certificate are an empty list (as the azure-sdk-for-js
  recordings `recording_can_list_secret_versions_non_existing.json` and
  `recording_can_list_certificate_versions_non_existing.json` show), versions are listed by
  version id, and the SDK's pager keeps following `nextLink` through short and empty pages;
- every answer carries Key Vault's headers and echoes the request's `x-ms-client-request-id`;
- a vault's network rules refuse with Key Vault's `ForbiddenByFirewall` and
  `ForbiddenByConnection` 403s, which the SDK raises with the body.
"""

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient
from azure.keyvault.secrets import SecretClient

from conftest import ADMIN_CLIENT_ID, IMDS, TENANT, VAULT_URL, admin

TOKEN_URL = f"http://{IMDS}/metadata/identity/oauth2/token"
LOCALHOST_VAULT_URL = "https://pyvault.vault.localhost"


def _imds(url=TOKEN_URL, resource="https://vault.azure.net", headers=None):
    params = {"api-version": "2018-02-01", "resource": resource, "client_id": ADMIN_CLIENT_ID}
    return requests.get(url, params=params, headers={"Metadata": "true", **(headers or {})}, timeout=10)


@pytest.fixture
def imds_faults():
    admin("DELETE", "/faults/imds")
    yield
    admin("DELETE", "/faults/imds")


def test_imds_token_path_with_a_trailing_slash():
    # azure-identity and MSAL ask without the slash; other clients send it, and IMDS accepts both.
    response = _imds(TOKEN_URL + "/")
    assert response.status_code == 200, response.text
    assert response.json()["resource"] == "https://vault.azure.net"
    assert response.json()["client_id"] == ADMIN_CLIENT_ID


def test_imds_refuses_an_unknown_resource_with_aadsts500011():
    response = _imds(resource="https://unknown.example.com")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_resource"
    assert body["error_codes"] == [500011]
    assert body["error_description"].startswith(
        f"AADSTS500011: The resource principal named https://unknown.example.com was not found in the tenant named {TENANT}."
    )
    # ManagedIdentityCredential reports it (a 400 from IMDS), with IMDS's description.
    with pytest.raises(ClientAuthenticationError, match="AADSTS500011"):
        ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID).get_token("https://unknown.example.com/.default")


def test_imds_refuses_a_request_carrying_x_forwarded_for():
    response = _imds(headers={"X-Forwarded-For": "10.0.0.4"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": "Request contains X-Forwarded-For header"}


def test_booting_imds_answers_404_then_410_and_the_credential_retries_the_404s(imds_faults):
    admin("PUT", "/faults/imds", {"booting": {"notFound": 1, "gone": 1}})
    assert _imds().status_code == 404
    assert _imds().status_code == 410
    assert _imds().status_code == 200

    admin("PUT", "/faults/imds", {"booting": {"notFound": 2}})
    token = ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID, retry_backoff_factor=0.01).get_token(
        "https://vault.azure.net/.default"
    )
    assert token.token.count(".") == 2
    assert admin("GET", "/faults/imds")["booting"] == {"notFound": 0, "gone": 0}


def test_the_challenge_names_vault_localhost_and_the_sdk_accepts_it():
    anonymous = requests.get(f"{LOCALHOST_VAULT_URL}/secrets/seeded", params={"api-version": "7.4"}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.windows.net/{TENANT}", resource="https://vault.localhost"'
    )
    secrets = SecretClient(LOCALHOST_VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    secret = secrets.get_secret("seeded")
    assert secret.value == "from-the-seed"
    assert secret.properties.vault_url == LOCALHOST_VAULT_URL


def test_the_versions_of_an_unknown_secret_are_an_empty_list():
    secrets = SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    assert list(secrets.list_properties_of_secret_versions("never-set")) == []


def test_the_versions_of_an_unknown_certificate_are_an_empty_list():
    certificates = CertificateClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    assert list(certificates.list_properties_of_certificate_versions("never-created")) == []


def test_versions_are_listed_by_version_id():
    secrets = SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    created = [secrets.set_secret("ordered", str(i)).properties.version for i in range(6)]
    listed = [p.version for p in secrets.list_properties_of_secret_versions("ordered")]
    assert sorted(listed) == sorted(created)
    assert listed == sorted(created, key=str.lower)


def test_answers_carry_key_vaults_headers_and_echo_the_client_request_id():
    secrets = SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    seen = []
    secrets.get_secret("seeded", raw_response_hook=seen.append)
    request, response = seen[-1].http_request.headers, seen[-1].http_response.headers
    assert response["x-ms-client-request-id"] == request["x-ms-client-request-id"]
    assert response["Cache-Control"] == "no-cache"
    assert response["Pragma"] == "no-cache"
    assert response["Expires"] == "-1"
    assert response["Strict-Transport-Security"] == "max-age=31536000;includeSubDomains"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["x-ms-keyvault-network-info"] == "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"
    for name in ("x-ms-request-id", "x-ms-keyvault-region", "x-ms-keyvault-service-version",
                 "x-ms-keyvault-rbac-assignment-id"):
        assert response.get(name), name


def test_the_pager_follows_short_and_empty_pages():
    secrets = SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    for name in ("short-a", "short-b", "short-c"):
        secrets.set_secret(name, "v")
    expected = {p.name for p in secrets.list_properties_of_secrets()}
    assert {"short-a", "short-b", "short-c", "seeded"} <= expected

    admin("PUT", "/faults/pyvault", {"listPaging": {"pageSize": 1, "emptyPages": 1}})
    pages = [[p.name for p in page] for page in secrets.list_properties_of_secrets().by_page()]
    # An empty page (with its nextLink) before each page of one item.
    assert pages[0] == []
    assert len(pages) == 2 * len(expected)
    assert all(len(page) <= 1 for page in pages)
    assert {name for page in pages for name in page} == expected


def test_network_denials_answer_key_vaults_403s():
    secrets = SecretClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID))
    for denial, words in (
        ("ForbiddenByFirewall", "Client address is not authorized and caller is not a trusted service."),
        ("ForbiddenByConnection", "Public network access is disabled and request is not from a trusted service nor via an approved private link."),
    ):
        admin("PUT", "/faults/pyvault", {"networkDenial": denial})
        with pytest.raises(HttpResponseError) as raised:
            secrets.get_secret("seeded")
        assert raised.value.status_code == 403
        error = raised.value.response.json()["error"]
        assert error["code"] == "Forbidden"
        assert error["innererror"] == {"code": denial}
        assert error["message"].startswith(words + "\r\n")
        assert error["message"].endswith("\r\nVault: pyvault;location=local")
    admin("DELETE", "/faults/pyvault")
    assert secrets.get_secret("seeded").value == "from-the-seed"
