"""The real Azure guest agent as the judge of the extension package.

Debian's `waagent` (WALinuxAgent 2.7.3) runs the extension zip that scripts/package built, fed
the way Azure feeds it by the fake WireServer of wireserver.py, with the certificates in the
local vault (`akvvm-emulator serve`). What counts is what the agent *uploads* (the status blobs of
its `PUT /status`, decoded) and the files in the store, through the lifecycle:

 1. install + enable with requireInitialSync: `transitioning` (the vault is slow), then `success`
    with a substatus per certificate;
 2. a rotation in the vault, picked up by the running service;
 3. a new settings sequence that adds a certificate;
 4. settings with an error: the agent reports the validator's words (those of `akvvm validate`);
 5. `state="disabled"` (the settings still in error): the service stops, the files stay;
 6. re-enable with good settings;
 7. an update from N to N+1, in the agent's own order (disable N, update N+1, uninstall N,
    install N+1, enable N+1): the state carries over, no file is rewritten, no hook re-runs;
 8. an upgrade from N+1 to 4.0.0, the extension's 4.x (chosen by the handler's version, as the
    real extension is): the 4.x layout (`.pem`, `.keyid`, `.luma`) appears beside the 3.x store,
    which stays byte for byte;
 9. uninstall: the service stops, the files stay.

There is no systemd here: the handler runs `akvvm run` as a detached process, which must live on
between the agent's commands. Runs only inside the namespaces of tests/system/run (the agent talks
to 168.63.129.16 and 169.254.169.254, which exist there only on `lo`).
"""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lib import (Emulator, TestFailure, binary, check, hook_script, lines, main, package,
                 pem_leaf_thumbprint, seed, step, wait_for)
from wireserver import EXTENSION, Platform, Servers

VERSION = os.environ.get("AKVVM_PACKAGE_VERSION", "")
NEXT = os.environ.get("AKVVM_PACKAGE_NEXT_VERSION", "")
# The package labelled as the extension's 4.x: the handler's version chooses akvvm's 4.x mode.
V4 = os.environ.get("AKVVM_PACKAGE_V4_VERSION", "")

WAAGENT_CONF = """\
Lib.Dir={lib}
Pid.File={dir}/waagent.pid
Extension.LogDir={dir}/extension-logs
Extensions.Enabled=y
Extensions.GoalStatePeriod=2
Provisioning.Agent=disabled
Provisioning.MonitorHostName=n
ResourceDisk.Format=n
ResourceDisk.EnableSwap=n
AutoUpdate.Enabled=n
OS.EnableFirewall=n
CGroups.Enabled=n
Logs.Collect=n
Logs.Verbose=y
Debug.EnableFastTrack=n
EnableOverProvisioning=n
HttpProxy.Host=None
"""


def status_of(handler):
    return handler["runtimeSettingsStatus"]["settingsStatus"]["status"]


def sequence_of(handler):
    return handler["runtimeSettingsStatus"]["sequenceNumber"]


def describe(handler):
    try:
        s = status_of(handler)
        return (f"{handler['handlerVersion']} {handler['status']} seq {sequence_of(handler)}: "
                f"{s['status']} {s['formattedMessage']['message'][:300]!r}")
    except (KeyError, TypeError):
        return json.dumps(handler)[:400]


def daemons():
    """The `akvvm run` processes (pid -> the executable's path): this PID namespace's only."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(b"/akvvm") and argv[1] == b"run":
            found[int(entry.name)] = argv[0].decode()
    return found


def snapshot(store):
    """Every file in the store with its inode and modification time, and every link's target."""
    shot = {}
    for path in sorted(Path(store).rglob("*")):
        if path.is_symlink():
            shot[path.name] = ("link", os.readlink(path))
        elif path.is_file():
            st = path.stat()
            shot[path.name] = ("file", st.st_ino, st.st_mtime_ns)
    return shot


class Scenario:
    def __init__(self, tmp):
        self.tmp = tmp
        self.lib = tmp / "lib"
        self.store = tmp / "store"
        self.state = tmp / "state"
        self.hooks = tmp / "hooks.log"
        self.hook = hook_script(tmp / "hook.sh", self.hooks)
        self.logs = tmp / "var-log"
        self.emulator = Emulator(tmp / "vault", seed({"web": "RSA", "api": "EC"}))
        packages = tmp / "packages"
        packages.mkdir()
        for version in [VERSION, NEXT, V4]:
            zip_path = package("zip", version)
            (packages / zip_path.name).write_bytes(zip_path.read_bytes())
        self.platform = Platform(packages)
        self.servers = Servers(self.platform)
        self.agent = None

    def settings(self, *names, **extra):
        observed = [{"url": self.emulator.url(n), "akvvm": {"reload": {"command": self.hook}}}
                    for n in names]
        document = self.emulator.settings(self.store, self.state, observed)
        document["secretsManagementSettings"]["pollingIntervalInS"] = "2"
        document["secretsManagementSettings"].update(extra)
        return document

    def start_agent(self):
        self.lib.mkdir()
        self.logs.mkdir()
        conf = self.tmp / "waagent.conf"
        conf.write_text(WAAGENT_CONF.format(lib=self.lib, dir=self.tmp))
        # /var/log/waagent.log is a fixed path: a private /var/log in a mount namespace of its own.
        self.agent = subprocess.Popen(
            ["unshare", "--mount", "--", "sh", "-c",
             'mount --bind "$1" /var/log && exec /usr/sbin/waagent -configuration-path:"$2" '
             "-run-exthandlers -debug", "sh", str(self.logs), str(conf)],
            stdout=(self.tmp / "waagent.out").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self):
        if self.agent is not None and self.agent.poll() is None:
            os.killpg(self.agent.pid, signal.SIGTERM)
            try:
                self.agent.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.agent.pid, signal.SIGKILL)
                self.agent.wait()
        for pid in daemons():
            os.kill(pid, signal.SIGTERM)
        self.servers.stop()
        self.emulator.stop()

    def diagnostics(self):
        """What to look at when a step fails (no secrets: the settings carry none)."""
        parts = []
        for handler in self.platform.handler_statuses()[-5:]:
            parts.append("uploaded: " + describe(handler))
        for log in [self.logs / "waagent.log", self.tmp / "waagent.out"]:
            if log.exists():
                tail = [line[:400] for line in log.read_text().splitlines()[-40:]]
                parts.append(f"--- {log.name} (tail) ---\n" + "\n".join(tail))
        for akvvm_log in sorted(self.lib.glob(f"{EXTENSION}-*/**/akvvm.log")) + \
                sorted((self.tmp / "extension-logs").rglob("akvvm.log")):
            parts.append(f"--- {akvvm_log} (tail) ---\n" + "\n".join(akvvm_log.read_text().splitlines()[-20:]))
        return "\n".join(parts)

    def upload_count(self):
        return len(self.platform.handler_statuses())

    def wait_upload(self, since, predicate, what, timeout=60):
        """Waits for an uploaded status (after the first `since`) of the extension that matches."""
        def found():
            for handler in self.platform.handler_statuses()[since:]:
                if predicate(handler):
                    return handler
            return None
        return wait_for(found, timeout, what)

    def commands(self):
        """The handler commands the agent ran, in order: (version, operation)."""
        log = self.logs / "waagent.log"
        text = log.read_text() if log.exists() else ""
        pattern = re.escape(EXTENSION) + r"-([0-9.]+)/bin/akvvm handler (\w+)"
        return [(m.group(1), m.group(2))
                for m in re.finditer(r"Executing command: \S*?" + pattern, text)]

    def current(self, name):
        return self.store / f"myvault.{name}"


def is_status(state, seq, version=None):
    def predicate(handler):
        try:
            return (status_of(handler)["status"] == state and sequence_of(handler) == seq
                    and (version is None or handler["handlerVersion"] == version))
        except (KeyError, TypeError):
            return False
    return predicate


def substatus_thumbprints(handler):
    """URL -> the thumbprint named in each substatus message."""
    found = {}
    for sub in status_of(handler).get("substatus", []):
        match = re.search(r"thumbprint ([0-9A-F]{40})", sub["formattedMessage"]["message"])
        found[sub["name"]] = (sub["status"], match.group(1) if match else None)
    return found


def substatus_message(handler, url):
    """The message of the substatus named `url`."""
    for sub in status_of(handler).get("substatus", []):
        if sub["name"] == url:
            return sub["formattedMessage"]["message"]
    return ""


def run_lifecycle(s):
    web_url, api_url = s.emulator.url("web"), s.emulator.url("api")

    step("1. install + enable with requireInitialSync: transitioning, then success")
    # A slow vault, so that the initial sync is still running when the agent reads the status.
    s.emulator.admin("PUT", "/faults/myvault", {"latencyMs": 8000})
    s.platform.set_goal(VERSION, "enabled", 0, s.settings("web"))
    s.start_agent()
    s.wait_upload(0, is_status("transitioning", 0, VERSION), "a transitioning status for seq 0",
                  timeout=90)
    s.emulator.admin("DELETE", "/faults/myvault")
    ready = s.wait_upload(0, is_status("success", 0, VERSION), "a success status for seq 0")
    check(ready["status"] == "Ready", f"handler status {ready['status']}, expected Ready")
    subs = substatus_thumbprints(ready)
    check(list(subs) == [web_url], f"substatus {subs}, expected one for {web_url}")
    web_thumb = pem_leaf_thumbprint(s.current("web"))
    check(subs[web_url] == ("success", web_thumb),
          f"substatus {subs[web_url]}, the installed file's thumbprint is {web_thumb}")
    check(len(lines(s.hooks)) == 1, f"hook runs after install: {lines(s.hooks)}")
    check(s.platform.downloads == {f"{EXTENSION}-{VERSION}.zip": 1},
          f"zip downloads: {s.platform.downloads}")
    check(len(daemons()) == 1, f"akvvm run processes: {daemons()}")
    first_daemon = next(iter(daemons()))

    step("2. a rotation in the vault, picked up by the running service")
    since = s.upload_count()
    s.emulator.rotate("web")
    wait_for(lambda: pem_leaf_thumbprint(s.current("web")) != web_thumb, 30,
             "the stable link to move to the rotated certificate")
    new_thumb = pem_leaf_thumbprint(s.current("web"))
    s.wait_upload(since, lambda h: substatus_thumbprints(h).get(web_url) == ("success", new_thumb),
                  "an uploaded status naming the rotated thumbprint")
    check(len(lines(s.hooks)) == 2, f"hook runs after the rotation: {lines(s.hooks)}")
    check(list(daemons()) == [first_daemon], "the service was restarted for a rotation")
    web_thumb = new_thumb

    step("3. a new settings sequence adds a certificate")
    since = s.upload_count()
    s.platform.set_goal(VERSION, "enabled", 1, s.settings("web", "api"))
    ready = s.wait_upload(since, is_status("success", 1, VERSION), "a success status for seq 1")
    subs = substatus_thumbprints(ready)
    check(set(subs) == {web_url, api_url}, f"substatus {subs}")
    check(subs[web_url] == ("success", web_thumb), f"web: {subs[web_url]}")
    check(subs[api_url] == ("success", pem_leaf_thumbprint(s.current("api"))), f"api: {subs[api_url]}")
    check(len(lines(s.hooks)) == 3, f"hooks: web must not re-run, api must run once: {lines(s.hooks)}")
    check(len(daemons()) == 1 and first_daemon not in daemons(),
          f"enable of a new sequence must replace the service: {daemons()}")

    step("4. settings with an error: the agent reports the validator's words")
    bad = s.settings("web", "api")
    bad["secretsManagementSettings"]["observedCertificates"][1]["url"] = \
        "https://myvault.vault.azure.net/certificates/api"
    bad_file = s.tmp / "bad.json"
    bad_file.write_text(json.dumps(bad))
    validated = subprocess.run([str(binary("akvvm")), "validate", "--json", str(bad_file)],
                               capture_output=True, text=True)
    report = json.loads(validated.stdout)
    diagnostics = report["diagnostics"] + [d for e in report["extensions"] for d in e["diagnostics"]]
    errors = [d for d in diagnostics if d["severity"] == "error"]
    check(errors, f"akvvm validate finds no error in the bad settings: {validated.stdout}")
    since = s.upload_count()
    running = set(daemons())
    s.platform.set_goal(VERSION, "enabled", 2, bad)
    failed = s.wait_upload(since, is_status("error", 2, VERSION), "an error status for seq 2")
    message = status_of(failed)["formattedMessage"]["message"]
    for error in errors:
        check(error["message"] in message and error["path"] in message,
              f"the uploaded message does not carry the validator's words {error['message']!r} "
              f"at {error['path']!r}: {message!r}")
    check(set(daemons()) == running, "bad settings must leave the running service alone")

    step("5. state=disabled: the service stops and the files stay")
    files = snapshot(s.store)
    since = s.upload_count()
    s.platform.set_goal(VERSION, "disabled", 2, bad)
    wait_for(lambda: ("disable" in [op for _, op in s.commands()]), 60, "the agent to run disable")
    wait_for(lambda: not daemons(), 30, "the service to stop on disable")
    check(snapshot(s.store) == files, "disable changed the store")
    hooks_before = lines(s.hooks)

    step("6. re-enable")
    since = s.upload_count()
    s.platform.set_goal(VERSION, "enabled", 3, s.settings("web", "api"))
    ready = s.wait_upload(since, is_status("success", 3, VERSION), "a success status for seq 3")
    check(ready["status"] == "Ready", f"handler status {ready['status']}")
    check(len(daemons()) == 1, f"akvvm run processes: {daemons()}")
    check(snapshot(s.store) == files, "re-enable rewrote the store")
    check(lines(s.hooks) == hooks_before, "re-enable re-ran hooks")

    step(f"7. update {VERSION} -> {NEXT}: the agent's order, state carried over")
    commands_before = len(s.commands())
    s.platform.set_goal(NEXT, "enabled", 3, s.settings("web", "api"))
    ready = s.wait_upload(since, is_status("success", 3, NEXT), f"a success status from {NEXT}",
                          timeout=90)
    ran = s.commands()[commands_before:]
    expected = [(VERSION, "disable"), (NEXT, "update"), (VERSION, "uninstall"),
                (NEXT, "install"), (NEXT, "enable")]
    check(ran == expected, f"the agent ran {ran}, expected {expected}")
    check(ready["handlerVersion"] == NEXT and ready["status"] == "Ready", describe(ready))
    running = daemons()
    check(len(running) == 1 and f"{EXTENSION}-{NEXT}/bin/akvvm" in next(iter(running.values())),
          f"the service must run from {NEXT}: {running}")
    check(snapshot(s.store) == files, "the update rewrote the store")
    check(lines(s.hooks) == hooks_before, "the update re-ran hooks")
    check(not (s.lib / f"{EXTENSION}-{VERSION}").exists(), f"{VERSION}'s folder is still there")
    check(s.platform.downloads.get(f"{EXTENSION}-{NEXT}.zip") == 1,
          f"zip downloads: {s.platform.downloads}")

    step(f"8. upgrade {NEXT} -> {V4} (4.x): the 4.x layout beside the untouched 3.x store")
    commands_before = len(s.commands())
    since = s.upload_count()
    s.platform.set_goal(V4, "enabled", 3, s.settings("web", "api"))
    ready = s.wait_upload(since, is_status("success", 3, V4), f"a success status from {V4}",
                          timeout=90)
    ran = s.commands()[commands_before:]
    check((V4, "enable") in ran, f"the agent ran {ran}, expected {V4}'s enable")
    check(ready["status"] == "Ready", describe(ready))
    running = daemons()
    check(len(running) == 1 and f"{EXTENSION}-{V4}/bin/akvvm" in next(iter(running.values())),
          f"the service must run from {V4}: {running}")
    subs = substatus_thumbprints(ready)
    for name, url in [("web", web_url), ("api", api_url)]:
        pem = s.store / f"myvault.{name}.pem"
        keyid = s.store / f"myvault.{name}.keyid"
        luma = s.store / f"myvault.{name}.luma"
        check(pem.is_symlink() and keyid.is_symlink() and luma.is_file(),
              f"{name}: the 4.x files are missing: {sorted(p.name for p in s.store.iterdir())}")
        check(".pem." in os.readlink(pem) and ".keyid." in os.readlink(keyid),
              f"{name}: links {os.readlink(pem)}, {os.readlink(keyid)}")
        check("PRIVATE KEY" not in pem.read_text() and "PRIVATE KEY" in keyid.read_text(),
              f"{name}: the 4.x .pem holds the chain, the .keyid the key")
        check(oct(luma.stat().st_mode & 0o777) == "0o644", f"{name}.luma mode")
        meta = json.loads(luma.read_text())
        check(meta["pem"] == os.readlink(pem) and meta["keyid"] == os.readlink(keyid),
              f"{name}.luma names {meta['pem']}, {meta['keyid']}")
        # The same certificate as 3.x installed: same version, same thumbprint.
        check(pem_leaf_thumbprint(pem) == pem_leaf_thumbprint(s.current(name)),
              f"{name}: the 4.x file is not the certificate 3.x installed")
        # Installed; the local vault's certificates are self-signed, which 4.x's chain
        # validation reports as a warning (docs/store.md, "Chain validation").
        check(subs.get(url) == ("warning", pem_leaf_thumbprint(pem)),
              f"{name}'s substatus: {subs.get(url)}")
        check("cert.chain_untrusted" in substatus_message(ready, url),
              f"{name}'s substatus names no chain warning: {substatus_message(ready, url)!r}")
    files_v3 = {name: entry for name, entry in snapshot(s.store).items()
                if not re.search(r"\.(pem|keyid)(\.\d{8}T[\d.]+Z)?$|\.luma$", name)}
    check(files_v3 == files, "the 4.x install changed the 3.x store")
    files = snapshot(s.store)
    hooks_before = lines(s.hooks)

    step("9. uninstall: the service stops, the files stay")
    since = s.upload_count()
    commands_before = len(s.commands())
    s.platform.uninstall()
    wait_for(lambda: not (s.lib / f"{EXTENSION}-{V4}").exists(), 60,
             "the agent to uninstall the extension and remove its folder")
    ran = s.commands()[commands_before:]
    check(ran == [(V4, "disable"), (V4, "uninstall")],
          f"the agent ran {ran}, expected disable and uninstall of {V4}")
    check(not daemons(), f"the service still runs after uninstall: {daemons()}")
    s.platform.remove_extension()
    wait_for(lambda: s.platform.latest_upload() is not None and not any(
        h.get("handlerName") == EXTENSION for h in
        s.platform.latest_upload()["aggregateStatus"]["handlerAggregateStatus"]), 30,
        "an uploaded status without the extension")
    check(snapshot(s.store) == files, "uninstall changed the store")
    check(lines(s.hooks) == hooks_before, "uninstall ran hooks")
    check(pem_leaf_thumbprint(s.current("web")) == web_thumb, "web's file changed")


def test():
    if not (VERSION and NEXT and V4):
        raise TestFailure("AKVVM_PACKAGE_VERSION, _NEXT_VERSION and _V4_VERSION are not set: "
                          "run this through tests/system/run")
    with tempfile.TemporaryDirectory(prefix="akvvm-guest-agent-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        scenario = Scenario(tmp)
        started = time.monotonic()
        try:
            run_lifecycle(scenario)
        except TestFailure as failure:
            raise TestFailure(f"{failure}\n{scenario.diagnostics()}") from None
        finally:
            scenario.stop()
        print(f"the lifecycle took {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main(test)
