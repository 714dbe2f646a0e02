"""azure-keyvault-certificates' certificate operation against the local vault: the create poller
through `inProgress` polls (the `pendingPolls` fault), the operation's CSR and request_id,
cancel and delete of the operation, and the imported certificate's 404
(`PendingCertificateNotFound`), as in the azure-sdk-for-js recording
`recording_can_read_cancel_and_delete_a_certificates_operation.js`."""

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import ADMIN_CLIENT_ID, VAULT_URL, admin
from test_certificates import _key_and_cert


def client(hook=None):
    kwargs = {"raw_response_hook": hook} if hook else {}
    return CertificateClient(VAULT_URL, ManagedIdentityCredential(client_id=ADMIN_CLIENT_ID), **kwargs)


def spki(public_key):
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_the_create_poller_completes_after_the_configured_in_progress_polls():
    admin("PUT", "/faults/pyvault", {"pendingPolls": 2})
    seen = []

    def hook(response):
        request = response.http_request
        if request.method == "GET" and request.url.split("?")[0].endswith("/pending"):
            seen.append(response.http_response.json()["status"])

    certs = client(hook)
    policy = CertificatePolicy(issuer_name="Self", subject="CN=polled.example")
    poller = certs.begin_create_certificate("py-pending-polled", policy, _polling_interval=0.01)
    created = poller.result()
    assert seen == ["inProgress", "inProgress", "completed"]
    assert created.name == "py-pending-polled"

    operation = certs.get_certificate_operation("py-pending-polled")
    assert operation.status == "completed"
    assert operation.target == f"{VAULT_URL}/certificates/py-pending-polled"
    csr = x509.load_der_x509_csr(operation.csr)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=polled.example"
    leaf = x509.load_der_x509_certificate(created.cer)
    assert spki(csr.public_key()) == spki(leaf.public_key())
    assert operation.request_id == certs.get_certificate_operation("py-pending-polled").request_id


def test_an_operation_is_cancelled_then_deleted():
    admin("PUT", "/faults/pyvault", {"pendingPolls": 50})
    certs = client()
    poller = certs.begin_create_certificate(
        "py-pending-cancelled", CertificatePolicy.get_default(), _polling_interval=0.2
    )
    first = certs.get_certificate_operation("py-pending-cancelled")
    assert first.status == "inProgress"
    cancelled = certs.cancel_certificate_operation("py-pending-cancelled")
    assert cancelled.cancellation_requested is True
    assert cancelled.request_id == first.request_id
    assert poller.result().status == "cancelled"
    deleted = certs.delete_certificate_operation("py-pending-cancelled")
    assert deleted.request_id == first.request_id
    with pytest.raises(ResourceNotFoundError) as gone:
        certs.get_certificate_operation("py-pending-cancelled")
    assert gone.value.error.code == "PendingCertificateNotFound"


def test_an_imported_certificate_has_no_operation():
    key, cert = _key_and_cert("imported.example")
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    certs = client()
    certs.import_certificate(
        "py-pending-imported", pem, policy=CertificatePolicy(issuer_name="Self", content_type="application/x-pem-file")
    )
    with pytest.raises(ResourceNotFoundError) as missing:
        certs.get_certificate_operation("py-pending-imported")
    assert missing.value.error.code == "PendingCertificateNotFound"
    assert missing.value.error.message == "Pending certificate not found: py-pending-imported"


def test_issuer_unknown_waits_for_merge_certificate():
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    certs = client()
    policy = CertificatePolicy(issuer_name="Unknown", subject="CN=merged.example")
    operation = certs.begin_create_certificate("py-pending-merged", policy).result()
    assert operation.issuer_name == "Unknown"
    assert operation.status == "inProgress"
    assert certs.get_certificate_operation("py-pending-merged").status == "inProgress"

    # A test CA signs the operation's CSR.
    csr = x509.load_der_x509_csr(operation.csr)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    window = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=30))
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(window[0]).not_valid_after(window[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_name)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(window[0]).not_valid_after(window[1])
        .sign(ca_key, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    merged = certs.merge_certificate(
        "py-pending-merged", [leaf.public_bytes(der), ca.public_bytes(der)]
    )
    assert merged.cer == leaf.public_bytes(der)
    assert certs.get_certificate("py-pending-merged").cer == merged.cer
    done = certs.get_certificate_operation("py-pending-merged")
    assert done.status == "completed"
    assert done.request_id == operation.request_id
