"""azure-keyvault-certificates against the local vault: create, import, versions, and the
managed secret's PFX as Key Vault encodes it."""

import base64
import datetime
import hashlib

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.certificates import (
    CertificateClient,
    CertificateContentType,
    CertificatePolicy,
    KeyCurveName,
    KeyType,
)
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from conftest import ADMIN_CLIENT_ID, VAULT_URL, admin


def credential():
    return ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID)


def test_create_self_signed_ec_certificate_and_read_its_pfx():
    certs = CertificateClient(VAULT_URL, credential())
    policy = CertificatePolicy(
        issuer_name="Self",
        subject="CN=py.example",
        san_dns_names=["py.example", "www.py.example"],
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_384,
        content_type=CertificateContentType.pkcs12,
        validity_in_months=6,
    )
    created = certs.begin_create_certificate("py-created", policy).result()
    assert created.name == "py-created"
    assert created.policy.key_type == KeyType.ec
    assert created.policy.key_curve_name == KeyCurveName.p_384
    assert created.policy.content_type == CertificateContentType.pkcs12
    leaf = x509.load_der_x509_certificate(created.cer)
    assert leaf.subject.rfc4514_string() == "CN=py.example"
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp384r1"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["py.example", "www.py.example"]
    assert created.properties.x509_thumbprint == hashlib.sha1(created.cer).digest()

    secret = SecretClient(VAULT_URL, credential()).get_secret("py-created")
    assert secret.properties.content_type == "application/x-pkcs12"
    assert secret.properties.managed is True
    assert secret.properties.key_id == f"{VAULT_URL}/keys/py-created/{created.properties.version}"
    assert secret.properties.version == created.properties.version
    key, cert, extra = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), None)
    assert cert.public_bytes(serialization.Encoding.DER) == created.cer
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    assert extra == []


def _key_and_cert(cn):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def test_import_pfx_with_password_and_pem():
    certs = CertificateClient(VAULT_URL, credential())
    secrets = SecretClient(VAULT_URL, credential())

    key, cert = _key_and_cert("imported.example")
    pfx = pkcs12.serialize_key_and_certificates(
        b"imported", key, cert, None, serialization.BestAvailableEncryption(b"s3cret"))
    imported = certs.import_certificate("py-imported", pfx, password="s3cret")
    der = cert.public_bytes(serialization.Encoding.DER)
    assert imported.cer == der
    assert imported.properties.x509_thumbprint == hashlib.sha1(der).digest()
    assert imported.policy.key_type == KeyType.rsa
    assert imported.policy.key_size == 2048
    value = secrets.get_secret("py-imported").value
    _, reloaded, _ = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
    assert reloaded.public_bytes(serialization.Encoding.DER) == der

    key, cert = _key_and_cert("pem.example")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM)
    policy = CertificatePolicy(issuer_name="Unknown", subject="CN=pem.example",
                               content_type=CertificateContentType.pem)
    imported = certs.import_certificate("py-pem", pem, policy=policy)
    assert imported.policy.content_type == CertificateContentType.pem
    secret = secrets.get_secret("py-pem")
    assert secret.properties.content_type == "application/x-pem-file"
    assert "-----BEGIN PRIVATE KEY-----" in secret.value
    assert cert.public_bytes(serialization.Encoding.PEM).decode() in secret.value


def test_rotation_adds_a_version():
    certs = CertificateClient(VAULT_URL, credential())
    before = certs.get_certificate("seeded-cert")
    assert before.policy.content_type == CertificateContentType.pem
    rotated = admin("POST", "/vaults/pyvault/certificates/seeded-cert/rotate")
    after = certs.get_certificate("seeded-cert")
    assert after.properties.version == rotated["version"] != before.properties.version
    versions = {p.version for p in certs.list_properties_of_certificate_versions("seeded-cert")}
    assert versions == {before.properties.version, after.properties.version}
    pinned = certs.get_certificate_version("seeded-cert", before.properties.version)
    assert pinned.cer == before.cer


def test_delete_recover_and_purge_a_certificate():
    certs = CertificateClient(VAULT_URL, credential())
    created = certs.begin_create_certificate("py-deleted", CertificatePolicy.get_default()).result()
    # The poller waits until the deleted certificate can be read, as against Key Vault.
    deleted = certs.begin_delete_certificate("py-deleted").result()
    assert deleted.recovery_id == f"{VAULT_URL}/deletedcertificates/py-deleted"
    assert deleted.properties.x509_thumbprint == created.properties.x509_thumbprint
    with pytest.raises(ResourceNotFoundError) as missing:
        certs.get_certificate("py-deleted")
    assert missing.value.error.code == "CertificateNotFound"
    assert certs.get_deleted_certificate("py-deleted").deleted_on is not None
    assert "py-deleted" in {d.name for d in certs.list_deleted_certificates()}
    with pytest.raises(ResourceExistsError) as taken:
        certs.begin_create_certificate("py-deleted", CertificatePolicy.get_default())
    assert taken.value.error.innererror["code"] == "ObjectIsDeletedButRecoverable"

    recovered = certs.begin_recover_deleted_certificate("py-deleted").result()
    assert recovered.properties.x509_thumbprint == created.properties.x509_thumbprint
    assert SecretClient(VAULT_URL, credential()).get_secret("py-deleted").properties.managed

    certs.begin_delete_certificate("py-deleted").result()
    certs.purge_deleted_certificate("py-deleted")
    with pytest.raises(ResourceNotFoundError):
        certs.get_deleted_certificate("py-deleted")


def test_read_and_update_the_policy():
    certs = CertificateClient(VAULT_URL, credential())
    policy = CertificatePolicy(
        issuer_name="Self",
        subject="CN=policy.example",
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_256,
        validity_in_months=6,
    )
    certs.begin_create_certificate("py-policy", policy).result()
    read = certs.get_certificate_policy("py-policy")
    assert read.subject == "CN=policy.example"
    assert read.validity_in_months == 6

    # Only the members sent change; the key type and curve stay as they were.
    change = CertificatePolicy(issuer_name="Self", subject="CN=renewed.example", validity_in_months=3)
    updated = certs.update_certificate_policy("py-policy", change)
    assert updated.subject == "CN=renewed.example"
    assert updated.validity_in_months == 3
    assert updated.key_type == KeyType.ec
    assert updated.key_curve_name == KeyCurveName.p_256
    assert updated.updated_on >= updated.created_on
    again = certs.get_certificate_policy("py-policy")
    assert (again.subject, again.validity_in_months) == ("CN=renewed.example", 3)

    # The next version follows the new policy.
    admin("POST", "/vaults/pyvault/certificates/py-policy/rotate")
    leaf = x509.load_der_x509_certificate(certs.get_certificate("py-policy").cer)
    assert leaf.subject.rfc4514_string() == "CN=renewed.example"
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)

    with pytest.raises(ResourceNotFoundError):
        certs.update_certificate_policy("py-no-such-cert", change)
