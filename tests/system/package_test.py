"""scripts/package's zip and .deb, checked by the tools that consume them.

- The extension zip: `HandlerManifest.json` at the root naming `bin/akvvm` for every command,
  `bin/akvvm` executable (mode kept in the zip) and running.
- The .deb: its control fields, conffiles and file list (`dpkg-deb`); `dpkg -i` on this machine;
  `systemd-analyze verify` of the installed unit; the man pages and completions; the installed
  akvvm syncing a certificate from the local vault with the packaged state directory; `dpkg -r`
  keeping the certificate and the state; `dpkg -P` removing the state and /etc/akvvm while the
  certificate stays.

It installs a package on this machine (as root, in CI), so it refuses to start when a package
named akvvm is already installed, and purges its own in every case.
"""

import gzip
import json
import os
import stat
import subprocess
import tempfile
import zipfile
from pathlib import Path

from lib import Emulator, TestFailure, binary, check, main, package, seed, step

VERSION = os.environ.get("AKVVM_PACKAGE_VERSION", "")


def run(*args, **kwargs):
    result = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise TestFailure(f"`{' '.join(args)}` exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def installed():
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "akvvm"],
                            capture_output=True, text=True)
    return result.stdout.strip()


def check_zip(tmp):
    step("the extension zip")
    path = package("zip")
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        check(names == ["HandlerManifest.json", "bin/", "bin/akvvm"] or
              names == ["HandlerManifest.json", "bin/akvvm"],
              f"the zip holds {names}, expected HandlerManifest.json and bin/akvvm")
        manifest = json.loads(archive.read("HandlerManifest.json"))
        commands = manifest[0]["handlerManifest"]
        for operation in ["install", "uninstall", "update", "enable", "disable"]:
            check(commands[f"{operation}Command"] == f"bin/akvvm handler {operation}",
                  f"{operation}Command is {commands.get(operation + 'Command')!r}")
        check(commands["updateMode"] == "UpdateWithInstall", "updateMode")
        mode = archive.getinfo("bin/akvvm").external_attr >> 16
        check(mode & 0o111, f"bin/akvvm is not executable in the zip (mode {oct(mode)})")
        archive.extractall(tmp / "zip")
    os.chmod(tmp / "zip/bin/akvvm", 0o755)  # zipfile drops modes on extraction; unzip keeps them
    run("unzip", "-q", "-o", str(path), "-d", str(tmp / "unzip"))
    check(os.access(tmp / "unzip/bin/akvvm", os.X_OK), "unzip does not give an executable bin/akvvm")
    out = run(str(tmp / "unzip/bin/akvvm"), "--version")
    check(out.strip().startswith("akvvm "), f"bin/akvvm --version printed {out!r}")


def check_deb_contents():
    step("the .deb's fields and files")
    deb = str(package("deb"))
    fields = run("dpkg-deb", "-f", deb)
    for expected in ["Package: akvvm", f"Version: {VERSION}", "Architecture: amd64",
                     "Depends: libc6 (>= 2."]:
        check(expected in fields, f"control has no {expected!r}:\n{fields}")
    conffiles = run("dpkg-deb", "-I", deb, "conffiles")
    check(conffiles.split() == ["/etc/akvvm/settings.json"], f"conffiles: {conffiles!r}")
    listing = run("dpkg-deb", "-c", deb)
    files = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for path in ["/usr/bin/akvvm", "/usr/lib/systemd/system/akvvm.service",
                 "/etc/akvvm/settings.json", "/usr/share/doc/akvvm/README.md",
                 "/usr/share/doc/akvvm/copyright", "/usr/share/doc/akvvm/docs/deploy.md",
                 "/usr/share/man/man1/akvvm.1.gz", "/usr/share/man/man1/akvvm-run.1.gz",
                 "/usr/share/man/man1/akvvm-handler-enable.1.gz",
                 "/usr/share/bash-completion/completions/akvvm",
                 "/usr/share/zsh/vendor-completions/_akvvm",
                 "/usr/share/fish/vendor_completions.d/akvvm.fish"]:
        check(path in files, f"the .deb has no {path}:\n{listing}")
    for line in listing.splitlines():
        check(" root/root " in line, f"not owned by root: {line}")


def check_installed(tmp):
    step("dpkg -i")
    out = run("dpkg", "-i", str(package("deb")))
    check(installed() == "install ok installed", f"dpkg says {installed()!r} after dpkg -i:\n{out}")
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "akvvm")
    check("/etc/akvvm/settings.json" in conffiles, f"settings.json is not a conffile: {conffiles!r}")
    check(Path("/var/lib/akvvm").is_dir(), "postinst made no /var/lib/akvvm")
    version = run("/usr/bin/akvvm", "--version")
    check(version.startswith("akvvm "), f"akvvm --version: {version!r}")

    step("systemd-analyze verify the installed unit")
    run("systemd-analyze", "verify", "/usr/lib/systemd/system/akvvm.service")

    step("man pages and completions")
    page = gzip.open("/usr/share/man/man1/akvvm.1.gz").read().decode()
    check(page.startswith(".ie") or ".TH akvvm 1" in page, "akvvm.1 is not a man page")
    for sub in ["validate", "run", "sync", "status", "handler"]:
        check(sub in page, f"akvvm.1 does not mention {sub}")
    enable = gzip.open("/usr/share/man/man1/akvvm-handler-enable.1.gz").read().decode()
    check("akvvm\\-handler\\-enable" in enable or "akvvm-handler-enable" in enable,
          "akvvm-handler-enable.1 is not about that command")
    bash = Path("/usr/share/bash-completion/completions/akvvm").read_text()
    check("_akvvm()" in bash and "inspect" in bash, "the bash completion does not complete akvvm")

    step("the default settings say what to do")
    result = subprocess.run(["/usr/bin/akvvm", "validate", "/etc/akvvm/settings.json"],
                            capture_output=True, text=True)
    check(result.returncode != 0 and "observedCertificates is empty" in result.stdout + result.stderr,
          f"validating the default settings: {result.returncode} {result.stdout}{result.stderr}")

    step("the installed akvvm syncs with the packaged state directory")
    emulator = Emulator(tmp / "vault", seed({"web": "EC"}))
    try:
        store = tmp / "store"
        settings = emulator.settings(store, "/var/lib/akvvm", [emulator.url("web")])
        settings_path = tmp / "settings.json"
        settings_path.write_text(json.dumps(settings))
        run("/usr/bin/akvvm", "sync", "--once", "--settings", str(settings_path))
    finally:
        emulator.stop()
    link = store / "myvault.web"
    check(link.is_symlink() and link.resolve().is_file(), f"{link} was not installed")
    check((Path("/var/lib/akvvm") / "state.json").is_file(),
          "the sync left no state.json in /var/lib/akvvm")
    return link


def check_remove_and_purge(link):
    step("dpkg -r: the certificate and the state stay")
    run("dpkg", "-r", "akvvm")
    check(not Path("/usr/bin/akvvm").exists(), "/usr/bin/akvvm is still there after dpkg -r")
    check(installed().endswith("config-files"), f"dpkg says {installed()!r} after dpkg -r")
    check(link.resolve().is_file(), "dpkg -r removed the installed certificate")
    check((Path("/var/lib/akvvm") / "state.json").is_file(), "dpkg -r removed the state")
    check(Path("/etc/akvvm/settings.json").is_file(), "dpkg -r removed the conffile")

    step("dpkg -P: the state and /etc/akvvm go, the certificate stays")
    run("dpkg", "-P", "akvvm")
    check(installed() in ("", "unknown ok not-installed"), f"dpkg says {installed()!r} after dpkg -P")
    check(not Path("/var/lib/akvvm").exists(), "dpkg -P left /var/lib/akvvm")
    check(not Path("/etc/akvvm").exists(), "dpkg -P left /etc/akvvm")
    check(link.resolve().is_file(), "dpkg -P removed the installed certificate")
    mode = stat.S_IMODE(link.resolve().stat().st_mode)
    check(mode == 0o600, f"the certificate file's mode is {oct(mode)}")


def test():
    state = installed()
    if state.startswith("install ok") or state.endswith("config-files"):
        raise TestFailure(f"a package named akvvm is already on this machine ({state}); this test "
                          "installs and purges its own: remove that one first (dpkg -P akvvm)")
    if Path("/var/lib/akvvm").exists() or Path("/etc/akvvm").exists():
        raise TestFailure("/var/lib/akvvm or /etc/akvvm exists without the package; this test "
                          "checks that purging removes them, so it will not run over them")
    binary("akvvm-emulator")
    with tempfile.TemporaryDirectory(prefix="akvvm-package-") as tmp:
        tmp = Path(tmp)
        check_zip(tmp)
        check_deb_contents()
        try:
            link = check_installed(tmp)
            check_remove_and_purge(link)
        finally:
            if installed():
                subprocess.run(["dpkg", "-P", "akvvm"], capture_output=True)


if __name__ == "__main__":
    main(test)
