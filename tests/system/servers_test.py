"""Real TLS servers load what akvvm writes, and follow a rotation without dropping a connection.

Debian's nginx and HAProxy, started here on loopback ports with their own configuration, pid and
log folders, serve the certificate `web` that `akvvm run` keeps installed from the local vault:

- nginx from the stable link (one file: the chain, then the key);
- HAProxy (master-worker) from the same file;
- nginx from the certbot layout (`<vault>.<name>.live/fullchain.pem` + `privkey.pem`).

Then the certificate is rotated in the vault and the rotation is pushed through akvvm's Event
Grid webhook; akvvm installs the new version and runs its reload hook (`nginx -s reload`, and
SIGUSR2 to HAProxy's master, which is what `systemctl reload haproxy` sends). Client loops
connect to every port throughout (a new TLS connection each time): none may fail, and each must
end up seeing the new certificate's thumbprint; three rotations in a row. The time from the
rotation request (and from the push) to each server presenting the new certificate is printed
(docs/benchmarks.md records it; no timing is asserted).

The same again with akvvm in its 4.x mode (`akvvm.extensionVersion: "4.0"`): nginx serves the
4.x links, `ssl_certificate <vault>.<name>.pem` (the chain) and `ssl_certificate_key
<vault>.<name>.keyid` (the key), through three pushed rotations, no connection failing. HAProxy
is not in that half: it reads the key from the `crt` file or from `<crt>.key`, and the 4.x names
fit neither (docs/store.md says so; use the 3.x or certbot layout for HAProxy).

Runs only inside the namespaces of tests/system/run.
"""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from lib import (Emulator, TestFailure, check, free_port, lines, main,
                 pem_leaf_thumbprint, release_akvvm, seed, served_thumbprint, step, wait_for)

NGINX_CONF = """\
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{stable} ssl;
        ssl_certificate {store}/myvault.web;
        ssl_certificate_key {store}/myvault.web;
        location / {{ return 200 "stable\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{certbot} ssl;
        ssl_certificate {store}/myvault.web.live/fullchain.pem;
        ssl_certificate_key {store}/myvault.web.live/privkey.pem;
        location / {{ return 200 "certbot\\n"; }}
    }}
}}
"""

ROUNDS = 3

NGINX_V4_CONF = """\
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {store}/myvault.web.pem;
        ssl_certificate_key {store}/myvault.web.keyid;
        location / {{ return 200 "4.x\\n"; }}
    }}
}}
"""

HAPROXY_CONF = """\
global
    log stdout format raw local0 warning
    pidfile {dir}/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend tls
    bind 127.0.0.1:{port} ssl crt {store}/myvault.web
    http-request return status 200 content-type text/plain string "haproxy"
"""


class ClientLoop(threading.Thread):
    """Connects to 127.0.0.1:port over TLS again and again, noting each thumbprint and when it
    was first seen; every failure is kept."""

    def __init__(self, name, port):
        super().__init__(daemon=True)
        self.name, self.port = name, port
        self.stop_event = threading.Event()
        self.first_seen = {}
        self.connections = 0
        self.failures = []

    def run(self):
        while not self.stop_event.is_set():
            try:
                thumb = served_thumbprint(self.port)
                self.connections += 1
                self.first_seen.setdefault(thumb, time.monotonic())
            except OSError as error:
                self.failures.append(f"{time.monotonic():.3f} {error!r}")
            time.sleep(0.005)

    def stop(self):
        self.stop_event.set()
        self.join(10)


def run_quiet(*args):
    result = subprocess.run(list(args), capture_output=True, text=True)
    if result.returncode != 0:
        raise TestFailure(f"`{' '.join(args)}` exited {result.returncode}: {result.stderr}")


def test():
    with tempfile.TemporaryDirectory(prefix="akvvm-servers-") as tmp:
        tmp = Path(tmp)
        processes = []
        emulator = Emulator(tmp / "vault", seed({"web": "RSA"}))
        try:
            run_scenario(tmp, emulator, processes)
            run_v4_scenario(tmp / "v4", emulator, processes)
        finally:
            for process, stop in reversed(processes):
                stop()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
            emulator.stop()


def run_scenario(tmp, emulator, processes):
    store, state = tmp / "store", tmp / "state"
    web = tmp / "web"
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
        (web / sub).mkdir(parents=True)
    ports = {"nginx stable link": free_port(), "nginx certbot layout": free_port(),
             "haproxy": free_port()}
    nginx_conf, haproxy_conf = web / "nginx.conf", web / "haproxy.cfg"
    nginx_conf.write_text(NGINX_CONF.format(dir=web, store=store,
                                            stable=ports["nginx stable link"],
                                            certbot=ports["nginx certbot layout"]))
    haproxy_conf.write_text(HAPROXY_CONF.format(dir=web, store=store, port=ports["haproxy"]))
    hooks_log = tmp / "hooks.log"
    hook = tmp / "reload.sh"
    # The hook a user would write: reload both servers (as `systemctl reload nginx haproxy`
    # would), and note that it ran.
    hook.write_text(
        "#!/bin/sh\nset -e\n"
        f"if [ -f '{web}/nginx.pid' ]; then nginx -p '{web}' -c '{nginx_conf}' -s reload; fi\n"
        f"if [ -f '{web}/haproxy.pid' ]; then kill -USR2 \"$(cat '{web}/haproxy.pid')\"; fi\n"
        f"echo \"$AKVVM_VERSION $AKVVM_THUMBPRINT\" >> '{hooks_log}'\n")
    os.chmod(hook, 0o755)

    webhook_port = free_port()
    secret = tmp / "webhook-secret"
    secret.write_text(os.urandom(16).hex() + "\n")
    os.chmod(secret, 0o600)
    settings = emulator.settings(
        store, state,
        [{"url": emulator.url("web"), "akvvm": {"certbotLayout": True}}],
        reload={"command": [str(hook)]},
        webhook={"address": f"127.0.0.1:{webhook_port}", "secretFile": str(secret)},
    )
    settings_path = tmp / "settings.json"
    settings_path.write_text(json.dumps(settings))

    step("akvvm installs web; nginx and HAProxy start on it")
    log = (tmp / "akvvm.log").open("w")
    # The release binary scripts/package built: the one that ships.
    akvvm = subprocess.Popen([str(release_akvvm()), "run", "--settings", str(settings_path)],
                             stdout=log, stderr=subprocess.STDOUT)
    processes.append((akvvm, lambda: akvvm.send_signal(signal.SIGTERM)))
    wait_for(lambda: (store / "myvault.web.live" / "privkey.pem").exists(), 60,
             "akvvm to install web (with the certbot layout)")
    first = pem_leaf_thumbprint(store / "myvault.web")
    check(pem_leaf_thumbprint(store / "myvault.web.live" / "fullchain.pem") == first,
          "the certbot layout holds another certificate than the stable link")
    # The servers start after the first install, as at boot with `After=akvvm.service`.

    run_quiet("nginx", "-t", "-q", "-p", str(web), "-c", str(nginx_conf))
    nginx = subprocess.Popen(["nginx", "-p", str(web), "-c", str(nginx_conf),
                              "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=(web / "nginx.out").open("w"))
    processes.append((nginx, lambda: nginx.send_signal(signal.SIGQUIT)))
    run_quiet("haproxy", "-c", "-q", "-f", str(haproxy_conf))
    haproxy = subprocess.Popen(["haproxy", "-W", "-f", str(haproxy_conf)],
                               stdout=(web / "haproxy.out").open("w"), stderr=subprocess.STDOUT)
    processes.append((haproxy, lambda: haproxy.send_signal(signal.SIGTERM)))
    wait_for(lambda: (web / "haproxy.pid").exists() and (web / "nginx.pid").exists(), 30,
             "nginx and HAProxy to write their pid files")
    for name, port in ports.items():
        thumb = wait_for(lambda p=port: served_thumbprint(p), 30, f"{name} to answer over TLS")
        check(thumb == first, f"{name} serves {thumb}, akvvm installed {first}")

    step(f"{ROUNDS} rotations pushed through the webhook: every server switches, none fails")
    loops = [ClientLoop(name, port) for name, port in ports.items()]
    for loop in loops:
        loop.start()
    time.sleep(1)
    previous = first
    figures = {loop.name: [] for loop in loops}
    for _ in range(ROUNDS):
        previous = rotate_once(emulator, store / "myvault.web", webhook_port, secret, hooks_log,
                               loops, previous, figures)
    for loop in loops:
        loop.stop()
    for loop in loops:
        check(not loop.failures,
              f"{loop.name}: {len(loop.failures)} of {loop.connections + len(loop.failures)} "
              f"connections failed across the switches: {loop.failures[:5]}")
        check(served_thumbprint(loop.port) == previous,
              f"{loop.name} does not serve the last certificate")
    print("time to the new certificate being served, per server and rotation, from the rotation "
          "request to the local vault (from the push to akvvm's webhook); "
          f"{sum(loop.connections for loop in loops)} TLS connections, none failed:", flush=True)
    for name, values in figures.items():
        print(f"  {name}: " + ", ".join(f"{r:.0f} ms ({p:.0f} ms)" for r, p in values), flush=True)


def run_v4_scenario(tmp, emulator, processes):
    """akvvm in its 4.x mode, nginx on the `.pem` and `.keyid` links, rotations pushed."""
    store, state, web = tmp / "store", tmp / "state", tmp / "web"
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
        (web / sub).mkdir(parents=True)
    port = free_port()
    nginx_conf = web / "nginx.conf"
    nginx_conf.write_text(NGINX_V4_CONF.format(dir=web, store=store, port=port))
    hooks_log, hook = tmp / "hooks.log", tmp / "reload.sh"
    hook.write_text(
        "#!/bin/sh\nset -e\n"
        f"if [ -f '{web}/nginx.pid' ]; then nginx -p '{web}' -c '{nginx_conf}' -s reload; fi\n"
        f"echo \"$AKVVM_VERSION $AKVVM_THUMBPRINT\" >> '{hooks_log}'\n")
    os.chmod(hook, 0o755)
    webhook_port = free_port()
    secret = tmp / "webhook-secret"
    secret.write_text(os.urandom(16).hex() + "\n")
    os.chmod(secret, 0o600)
    settings = emulator.settings(
        store, state, [{"url": emulator.url("web")}],
        reload={"command": [str(hook)]},
        webhook={"address": f"127.0.0.1:{webhook_port}", "secretFile": str(secret)},
        extensionVersion="4.0",
    )
    del settings["secretsManagementSettings"]["requireInitialSync"]
    settings_path = tmp / "settings.json"
    settings_path.write_text(json.dumps(settings))

    step("4.x: akvvm installs web as .pem + .keyid; nginx starts on them")
    log = (tmp / "akvvm.log").open("w")
    akvvm = subprocess.Popen([str(release_akvvm()), "run", "--settings", str(settings_path)],
                             stdout=log, stderr=subprocess.STDOUT)
    processes.append((akvvm, lambda: akvvm.send_signal(signal.SIGTERM)))
    wait_for(lambda: (store / "myvault.web.luma").exists(), 60, "akvvm to install web (4.x)")
    first = pem_leaf_thumbprint(store / "myvault.web.pem")
    run_quiet("nginx", "-t", "-q", "-p", str(web), "-c", str(nginx_conf))
    nginx = subprocess.Popen(["nginx", "-p", str(web), "-c", str(nginx_conf),
                              "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=(web / "nginx.out").open("w"))
    processes.append((nginx, lambda: nginx.send_signal(signal.SIGQUIT)))
    thumb = wait_for(lambda: served_thumbprint(port), 30, "nginx (4.x) to answer over TLS")
    check(thumb == first, f"nginx (4.x) serves {thumb}, akvvm installed {first}")

    step(f"4.x: {ROUNDS} rotations pushed through the webhook: nginx switches, no failure")
    loops = [ClientLoop("nginx 4.x links", port)]
    loops[0].start()
    time.sleep(1)
    previous, figures = first, {"nginx 4.x links": []}
    for _ in range(ROUNDS):
        previous = rotate_once(emulator, store / "myvault.web.pem", webhook_port, secret,
                               hooks_log, loops, previous, figures)
    loops[0].stop()
    check(not loops[0].failures,
          f"nginx 4.x: {len(loops[0].failures)} connections failed: {loops[0].failures[:5]}")
    check(served_thumbprint(port) == previous, "nginx 4.x does not serve the last certificate")
    values = figures["nginx 4.x links"]
    print(f"  nginx 4.x links ({loops[0].connections} TLS connections, none failed): "
          + ", ".join(f"{r:.0f} ms ({p:.0f} ms)" for r, p in values), flush=True)


def rotate_once(emulator, current, webhook_port, secret, hooks_log, loops, previous, figures):
    """One rotation in the vault, pushed to akvvm's webhook; waits until every server presents the
    new certificate (the one `current` links to) and notes how long that took from the push.
    Returns the new thumbprint."""
    hooks_before = len(lines(hooks_log))
    rotated_at = time.monotonic()
    rotated = emulator.rotate("web")
    version = rotated.get("version") or rotated.get("id", "").rsplit("/", 1)[-1]
    event = [{
        "id": version, "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/myvault",
        "subject": "web", "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "eventTime": "2026-12-01T00:00:00Z", "dataVersion": "1", "metadataVersion": "1",
        "data": {"Id": f"https://myvault.vault.azure.net/certificates/web/{version}",
                 "VaultName": "myvault", "ObjectType": "Certificate", "ObjectName": "web",
                 "Version": version},
    }]
    request = urllib.request.Request(
        f"http://127.0.0.1:{webhook_port}/eventgrid", data=json.dumps(event).encode(),
        headers={"Content-Type": "application/json", "X-Akvvm-Key": secret.read_text().strip()})
    pushed_at = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as answer:
        delivery = json.loads(answer.read())
    check(delivery.get("syncing") == [emulator.url("web")], f"the webhook answered {delivery}")
    wait_for(lambda: len(lines(hooks_log)) == hooks_before + 1, 30, "the reload hook to run")
    new = pem_leaf_thumbprint(current)
    check(new != previous, "the stable link did not move to the new certificate")
    check(lines(hooks_log)[hooks_before:] == [f"{version} {new}"],
          f"hook runs after the rotation: {lines(hooks_log)[hooks_before:]}, expected "
          f"one for version {version}, thumbprint {new}")
    wait_for(lambda: all(new in loop.first_seen for loop in loops), 30,
             "every server to present the new certificate")
    for loop in loops:
        figures[loop.name].append((1000 * (loop.first_seen[new] - rotated_at),
                                   1000 * (loop.first_seen[new] - pushed_at)))
    time.sleep(0.3)
    return new

if __name__ == "__main__":
    main(test)
