#!/usr/bin/env bash
# Runs the Python SDK conformance tests: builds `akvvm-emulator`, starts `serve` with seed.json on
# free loopback ports, waits until it answers, runs pytest in a virtual environment with the
# pinned SDKs (requirements.txt), then stops the emulator.
#
#   crates/akvvm-emulator/tests/python/run.sh [pytest args...]
#
# Environment: CARGO_TARGET_DIR (where cargo builds), AKVVM_PYTHON_VENV (the virtual environment,
# default $TARGET/python-venv), PYTHON (default python3).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
python="${PYTHON:-python3}"
venv="${AKVVM_PYTHON_VENV:-$target/python-venv}"

cargo build --quiet --manifest-path "$root/Cargo.toml" -p akvvm-emulator --bin akvvm-emulator
binary="$target/debug/akvvm-emulator"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if ! cmp -s "$here/requirements.txt" "$venv/.akvvm-requirements" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/.akvvm-requirements"
fi

free_port() {
    "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
https_port="$(free_port)"
imds_port="$(free_port)"
while [ "$imds_port" = "$https_port" ]; do imds_port="$(free_port)"; done

data_dir="$(mktemp -d)"
log="$data_dir/emulator.log"
"$binary" serve --https "127.0.0.1:$https_port" --imds "127.0.0.1:$imds_port" \
    --data-dir "$data_dir" --seed "$here/seed.json" >"$log" 2>&1 &
emulator_pid=$!
cleanup() {
    kill "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
    rm -rf "$data_dir"
}
trap cleanup EXIT

# Ready when the admin API answers over TLS with the CA it wrote.
for _ in $(seq 1 100); do
    if [ -f "$data_dir/ca.pem" ] && "$venv/bin/python" - "$https_port" "$data_dir/ca.pem" <<'PY' 2>/dev/null; then
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        sys.exit(0 if tls.recv(64).startswith(b"HTTP/1.1 200") else 1)
PY
        break
    fi
    if ! kill -0 "$emulator_pid" 2>/dev/null; then
        echo "akvvm-emulator exited early:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done

export AKVVM_EMULATOR_HTTPS="127.0.0.1:$https_port"
export AKVVM_EMULATOR_IMDS="127.0.0.1:$imds_port"
export AKVVM_EMULATOR_CA="$data_dir/ca.pem"
cd "$here"
status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- akvvm-emulator log ---" >&2
    tail -n 50 "$log" >&2
fi
exit "$status"
