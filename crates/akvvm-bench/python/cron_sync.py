#!/usr/bin/env python3
"""What a user would write instead of akvvm: a cron job on the official Azure SDK for Python
(azure-keyvault-secrets, azure-identity, cryptography). For each certificate URL it gets the
secret (a certificate's PFX), and when the version is new, writes the key and the chain as PEM
(`<store>/<vault>.<name>.<version>.pem`, written to a temporary file, fsynced, renamed) and points
the link `<store>/<vault>.<name>` at it. Sequential, one SecretClient per vault, the managed
identity from IMDS.

    cron_sync.py --store DIR --urls FILE   (one https://<vault>.vault.azure.net/secrets/<name> a line)

akvvm-bench runs it against the local vault; only then are AKVVM_BENCH_HTTPS and
AKVVM_BENCH_IMDS set: vault host names and localhost resolve to the local vault's listener, and
IMDS is reached through ManagedIdentityCredential's documented override
(AZURE_POD_IDENTITY_AUTHORITY_HOST). REQUESTS_CA_BUNDLE trusts its CA.
"""

import argparse
import base64
import os
import socket
import sys
from urllib.parse import urlparse

if os.environ.get("AKVVM_BENCH_HTTPS"):
    _host, _port = os.environ["AKVVM_BENCH_HTTPS"].rsplit(":", 1)
    _real_getaddrinfo = socket.getaddrinfo

    def _mapped(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name and (name.endswith(".vault.azure.net") or name == "localhost"):
            return _real_getaddrinfo(_host, int(_port), *args, **kwargs)
        return _real_getaddrinfo(host, port, *args, **kwargs)

    socket.getaddrinfo = _mapped
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = "http://" + os.environ["AKVVM_BENCH_IMDS"]

from azure.identity import ManagedIdentityCredential  # noqa: E402
from azure.keyvault.secrets import SecretClient  # noqa: E402
from cryptography.hazmat.primitives.serialization import (  # noqa: E402
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)


def write_atomic(path, data):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def link_atomic(target, link):
    tmp = link + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, link)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--urls", required=True)
    args = parser.parse_args()
    credential = ManagedIdentityCredential()
    clients = {}
    failed = 0
    with open(args.urls) as f:
        urls = [line.strip() for line in f if line.strip()]
    for url in urls:
        parsed = urlparse(url)
        vault_url = f"https://{parsed.hostname}"
        name = parsed.path.split("/")[2]
        vault = parsed.hostname.split(".")[0]
        client = clients.get(vault_url)
        if client is None:
            client = clients[vault_url] = SecretClient(vault_url, credential)
        try:
            secret = client.get_secret(name)
        except Exception as e:  # a cron job logs and goes on
            print(f"FAILED {url}: {e}", file=sys.stderr)
            failed += 1
            continue
        version = secret.properties.version
        link = os.path.join(args.store, f"{vault}.{name}")
        target = f"{vault}.{name}.{version}.pem"
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        key, cert, chain = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), None)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        pem += cert.public_bytes(Encoding.PEM)
        for c in chain:
            pem += c.public_bytes(Encoding.PEM)
        write_atomic(os.path.join(args.store, target), pem)
        link_atomic(target, link)
    fd = os.open(args.store, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
