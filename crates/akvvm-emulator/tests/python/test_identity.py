"""Managed identity (IMDS) and certificate (Entra ID) credentials from azure-identity."""

import re
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


def _assertion(app, audience, not_before, expires):
    """A client assertion (RS256) signed with the app's generated key."""
    import base64
    import json

    from cryptography.hazmat.primitives.asymmetric import padding

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "RS256", "typ": "JWT", "x5t": app["x5t"]}
    claims = {"aud": audience, "iss": app["clientId"], "sub": app["clientId"], "jti": "1",
              "nbf": not_before, "exp": expires}
    signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key(app["privateKeyPem"].encode(), password=None)
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signed}.{b64(signature)}"


def test_entra_refuses_assertions_for_another_audience_or_out_of_time_in_its_own_words():
    app = admin("POST", "/apps", {"displayName": "pytest-assertions"})
    token_url = f"{AUTHORITY}/{TENANT}/oauth2/v2.0/token"

    def refused(assertion):
        response = requests.post(token_url, timeout=10, data={
            "client_id": app["clientId"], "scope": SCOPE, "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion})
        assert response.status_code == 401, response.text
        body = response.json()
        assert body["error"] == "invalid_client"
        return body, body["error_description"].splitlines()[0]

    now = int(time.time())
    body, line = refused(_assertion(app, "https://elsewhere/token", now, now + 600))
    assert body["error_codes"] == [700023]
    assert line.startswith("AADSTS700023: Client assertion audience claim does not match Realm issuer.")

    # 2020-01-01T00:00:00Z to 01:00:00Z: the times in ISO-8601 as Entra writes them.
    body, line = refused(_assertion(app, token_url, 1577836800, 1577840400))
    assert body["error_codes"] == [700024]
    assert re.match(
        r"AADSTS700024: Client assertion is not within its valid time range\. "
        r"Current time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z, "
        r"assertion valid from 2020-01-01T00:00:00\.0000000Z, "
        r"expiry time of assertion 2020-01-01T01:00:00\.0000000Z\.", line), line

    # The same assertion in its time range is accepted.
    accepted = requests.post(token_url, timeout=10, data={
        "client_id": app["clientId"], "scope": SCOPE, "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": _assertion(app, token_url, now, now + 600)})
    assert accepted.status_code == 200, accepted.text


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
