"""Helpers the system tests share (standard library only): the local vault as a process
(`akvvm-emulator serve`) and its admin API, akvvm settings pointing at it, waiting, thumbprints.

Every test here runs inside the loopback-only namespaces `tests/system/run` makes; nothing
listens on or connects to an address other than loopback (and the fake WireServer's addresses,
which `run` puts on `lo`).
"""

import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
if not TARGET.is_absolute():
    TARGET = ROOT / TARGET
TENANT = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
VAULT = "myvault"


class TestFailure(Exception):
    """A check that did not hold; the message says what was expected and what was seen."""


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def step(text):
    print(f"--- {text}", flush=True)


def wait_for(predicate, timeout, what, interval=0.1):
    """Polls `predicate` until it returns a true value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError, TestFailure) as error:
            last_error = error
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TestFailure(f"timed out after {timeout} s waiting for {what}{detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha1_thumbprint(der):
    return hashlib.sha1(der).hexdigest().upper()


def pem_leaf_thumbprint(path):
    """The SHA-1 thumbprint of the first certificate in a PEM file."""
    text = Path(path).read_text()
    begin = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    der = ssl.PEM_cert_to_DER_cert(text[begin:end] + "\n")
    return sha1_thumbprint(der)


def served_thumbprint(port, server_name="www.contoso.com", timeout=5):
    """The SHA-1 thumbprint of the certificate a TLS server on 127.0.0.1:port presents."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return sha1_thumbprint(tls.getpeercert(binary_form=True))


def binary(name):
    """A debug binary of the workspace (`run` builds them before entering the namespace)."""
    path = TARGET / "debug" / name
    if not path.is_file():
        raise TestFailure(f"{path} is missing: build it (tests/system/run does) with "
                          f"cargo build --bin {name}")
    return path


def release_akvvm():
    """The release `akvvm` that scripts/package built (and put in both packages)."""
    path = TARGET / "release" / "akvvm"
    if not path.is_file():
        raise TestFailure(f"{path} is missing: run scripts/package first (tests/system/run does)")
    return path


def package(kind, version=None):
    """A package built by scripts/package: kind "zip" or "deb"."""
    version = version or os.environ["AKVVM_PACKAGE_VERSION"]
    out = ROOT / "target" / "package"
    name = (f"Microsoft.Azure.KeyVault.KeyVaultForLinux-{version}.zip" if kind == "zip"
            else f"akvvm_{version}_amd64.deb")
    path = out / name
    if not path.is_file():
        raise TestFailure(f"{path} is missing: run scripts/package first (tests/system/run does)")
    return path


def seed(certificates):
    """A seed with the system identity allowed to read vault `myvault` holding `certificates`
    (name -> "RSA" (PFX) or "EC" (PEM))."""
    certs = []
    for name, kty in certificates.items():
        key = {"kty": "RSA", "key_size": 2048} if kty == "RSA" else {"kty": "EC", "crv": "P-256"}
        content = "application/x-pkcs12" if kty == "RSA" else "application/x-pem-file"
        certs.append({
            "name": name,
            "policy": {
                "key_props": key,
                "x509_props": {"subject": f"CN={name}.contoso.com",
                               "sans": {"dns_names": [f"{name}.contoso.com", "www.contoso.com"]}},
                "secret_props": {"contentType": content},
            },
        })
    return {
        "tenantId": TENANT,
        "identities": {"system": {"clientId": "c7373ae5-91c2-4165-8ab6-7381d6e75619"}},
        "vaults": [{
            "name": VAULT,
            "roles": [{"principal": "system", "roles": ["Key Vault Secrets User"]}],
            "certificates": certs,
        }],
    }


class Emulator:
    """`akvvm-emulator serve` on free loopback ports, with its admin API."""

    def __init__(self, workdir, seed_document):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        seed_path = self.dir / "seed.json"
        seed_path.write_text(json.dumps(seed_document))
        self.https_port = free_port()
        self.imds_port = free_port()
        while self.imds_port == self.https_port:
            self.imds_port = free_port()
        self.ca = self.dir / "data" / "ca.pem"
        self.log = self.dir / "emulator.log"
        self.process = subprocess.Popen(
            [str(binary("akvvm-emulator")), "serve",
             "--https", f"127.0.0.1:{self.https_port}", "--imds", f"127.0.0.1:{self.imds_port}",
             "--data-dir", str(self.dir / "data"), "--seed", str(seed_path)],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, 60, "the local vault to answer /_emulator/health")

    def _healthy(self):
        if self.process.poll() is not None:
            raise SystemExit(f"akvvm-emulator exited early:\n{self.log.read_text()}")
        if not self.ca.exists():
            return False
        return self.admin("GET", "/health") is not None

    def admin(self, method, path, body=None):
        context = ssl.create_default_context(cafile=str(self.ca))
        connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=context,
                                                 timeout=30)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload else {}
            connection.request(method, "/_emulator" + path, body=payload, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
            if response.status >= 300:
                raise TestFailure(f"admin API {method} {path}: {response.status} {text[:300]}")
            return json.loads(text) if text.strip() else {}
        finally:
            connection.close()

    def rotate(self, name):
        return self.admin("POST", f"/vaults/{VAULT}/certificates/{name}/rotate", {})

    def secret_gets(self):
        """How many GETs of secrets the vault has answered (from the admin counters)."""
        counters = self.admin("GET", "/counters")
        total = 0
        for entry in counters if isinstance(counters, list) else counters.get("counters", []):
            if entry.get("method") == "GET" and "/secrets/" in entry.get("path", ""):
                total += entry.get("count", 0)
        return total

    def url(self, name):
        return f"https://{VAULT}.vault.azure.net/secrets/{name}"

    def settings(self, store, state, observed, **agent):
        """akvvm settings observing `observed` (URL strings or objects), pointed at this vault."""
        akvvm = {
            "stateDirectory": str(state),
            "caCertificates": [str(self.ca)],
            "resolve": {f"{VAULT}.vault.azure.net": f"127.0.0.1:{self.https_port}"},
        }
        akvvm.update(agent)
        return {
            "secretsManagementSettings": {
                "pollingIntervalInS": "3600",
                "requireInitialSync": True,
                "certificateStoreLocation": str(store),
                "observedCertificates": observed,
            },
            "authenticationSettings": {
                "msiEndpoint": f"http://127.0.0.1:{self.imds_port}/metadata/identity",
            },
            "akvvm": akvvm,
        }

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def hook_script(path, log):
    """A reload hook: appends `<version> <thumbprint>` to `log` (one line a run)."""
    Path(path).write_text(
        "#!/bin/sh\necho \"$AKVVM_VERSION $AKVVM_THUMBPRINT\" >> '%s'\n" % log)
    os.chmod(path, 0o755)
    return [str(path)]


def lines(path):
    p = Path(path)
    return p.read_text().splitlines() if p.exists() else []


def main(test):
    """Runs `test()`; a failure prints its message and exits 1."""
    try:
        test()
    except TestFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("ok", flush=True)
