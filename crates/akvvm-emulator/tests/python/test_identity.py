"""Managed identity (IMDS) and certificate (Entra ID) credentials from azure-identity."""

import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, CredentialUnavailableError, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
import datetime

from conftest import ADMIN_CLIENT_ID, AUTHORITY, IMDS, TENANT, VAULT_URL, admin

SCOPE = "https://vault.azure.net/.default"


def test_imds_answers_with_string_numbers_and_its_errors():
    url = f"http://{IMDS}/metadata/identity/oauth2/token"
    params = {"api-version": "2018-02-01", "resource": "https://vault.azure.net", "client_id": ADMIN_CLIENT_ID}
    body = requests.get(url, params=params, headers={"Metadata": "true"}, timeout=10).json()
    assert body["token_type"] == "Bearer"
    assert body["client_id"] == ADMIN_CLIENT_ID
    assert body["resource"] == "https://vault.azure.net"
    for field in ("expires_in", "expires_on", "ext_expires_in", "not_before"):
        assert isinstance(body[field], str) and body[field].isdigit(), field
    assert int(body["expires_on"]) > time.time()

    missing_header = requests.get(url, params=params, timeout=10)
    assert missing_header.status_code == 400
    assert missing_header.json() == {
        "error": "invalid_request",
        "error_description": "Required metadata header not specified",
    }

    unnamed = requests.get(url, params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
                           headers={"Metadata": "true"}, timeout=10)
    assert unnamed.status_code == 400
    assert unnamed.json()["error_description"].startswith("Multiple user assigned identities exist")


def test_managed_identity_credential_gets_tokens_and_reports_ambiguity():
    token = ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID).get_token(SCOPE)
    assert token.token.count(".") == 2
    assert token.expires_on > time.time() + 3600

    with pytest.raises(CredentialUnavailableError, match="Multiple user assigned identities exist"):
        ManagedIdentityCredential().get_token(SCOPE)


def _self_signed(common_name):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem + cert.public_bytes(serialization.Encoding.PEM), cert


def test_certificate_credential_signs_in_and_reads_a_secret():
    bundle, cert = _self_signed("paas-bootstrap")
    app = admin("POST", "/apps", {"displayName": "pytest-paas",
                                  "certificatePem": cert.public_bytes(serialization.Encoding.PEM).decode()})
    admin("POST", "/vaults/pyvault/roles", {"principal": app["clientId"], "roles": ["Key Vault Secrets User"]})

    credential = CertificateCredential(TENANT, app["clientId"], certificate_data=bundle, authority=AUTHORITY,
                                       disable_instance_discovery=True)
    client = SecretClient(VAULT_URL, credential)
    assert client.get_secret("seeded").value == "from-the-seed"

    # A certificate the app does not have is refused with Entra's error.
    stranger, stranger_cert = _self_signed("someone-else")
    wrong = CertificateCredential(TENANT, app["clientId"], certificate_data=stranger, authority=AUTHORITY,
                                  disable_instance_discovery=True)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        wrong.get_token(SCOPE)
    # Entra's words: the key was not found, named by its SHA-1 thumbprint in hex.
    stranger_thumbprint = stranger_cert.fingerprint(hashes.SHA1()).hex().upper()
    with pytest.raises(ClientAuthenticationError, match=f"Thumbprint of key used by client: '{stranger_thumbprint}'"):
        wrong.get_token(SCOPE)


def test_discovery_for_an_unknown_tenant_fails_with_invalid_tenant():
    response = requests.get(f"{AUTHORITY}/no-such-tenant/v2.0/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant 'no-such-tenant' not found.")
    known = requests.get(f"{AUTHORITY}/{TENANT}/v2.0/.well-known/openid-configuration", timeout=10)
    assert known.status_code == 200
    assert known.json()["token_endpoint"] == f"{AUTHORITY}/{TENANT}/oauth2/v2.0/token"
