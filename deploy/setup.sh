#!/usr/bin/env bash
# Sets up Plugin Executor on a fresh Debian machine; safe to run again (idempotent):
#   1. Docker Engine (Debian's docker.io) installed if absent;
#   2. gVisor (Debian's runsc) installed and registered with dockerd as runtime "runsc"
#      (merged into /etc/docker/daemon.json; a running dockerd reloads it on SIGHUP);
#   3. dockerd started if not running;
#   4. the runtime base image built (from ARG BASE when pullable, else a debootstrap rootfs),
#      then its flavors (runtime_image/flavors: minimal, kili, datascience);
#   5. a virtualenv in .venv with the package and its dev tools, at the versions of
#      deploy/requirements.lock;
#   6. Debian's prometheus (promtool and the server the alert-rule tests start), its own
#      service stopped and disabled;
#   7. Debian's docker-registry and htpasswd (images through a registry), its service off;
#   8. Debian's docker-compose 1.29 (deploy/compose.cluster.yaml and its test).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! command -v dockerd >/dev/null 2>&1; then
  say "installing Docker Engine (docker.io) and debootstrap"
  apt_install docker.io debootstrap
fi
command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
command -v curl >/dev/null 2>&1 || apt_install curl
# The clock tests run a node with its wall clock shifted (libfaketime's LD_PRELOAD library).
command -v faketime >/dev/null 2>&1 || apt_install faketime
# The web console's end-to-end test drives Debian's Chromium through Playwright.
command -v chromium >/dev/null 2>&1 || apt_install chromium

if ! command -v runsc >/dev/null 2>&1; then
  say "installing gVisor (runsc)"
  apt_install runsc
fi
# Runtime args (see deploy/register-runsc.py): --network=none, --host-uds=open. Its KVM
# platform hangs here: the default platform is kept.
registered=0
$SUDO python3 deploy/register-runsc.py "$(command -v runsc)" || registered=$?
if [ "$registered" -eq 2 ]; then
  echo "could not register runsc in /etc/docker/daemon.json" >&2; exit 1
fi
if [ "$registered" -eq 0 ] && [ -n "$(pidof dockerd || true)" ]; then
  say "runsc registered: reloading dockerd's runtimes (SIGHUP, running containers untouched)"
  $SUDO kill -HUP $(pidof dockerd)
  for _ in $(seq 20); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && break
    sleep 0.5
  done
fi

# A dockerd that is only slow to answer (busy machine) must not get a second one started
# beside it: a second daemon fails on the pid file and tears down the docker0 bridge.
if ! docker info >/dev/null 2>&1 && [ -n "$(pidof dockerd || true)" ]; then
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  $SUDO mkdir -p /var/log
  $SUDO setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 20 /var/log/dockerd.log; echo "dockerd did not start: see /var/log/dockerd.log" >&2; exit 1; }
fi
say "Docker Engine $(docker version --format '{{.Server.Version}}') is up"

say "building the runtime base image"
bash deploy/build-runtime-image.sh
say "building the runtime flavors (minimal, kili, datascience)"
bash deploy/build-flavor-images.sh

# PostgreSQL on loopback: the store for several executor processes, and the tests of it.
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  say "installing PostgreSQL"
  apt_install postgresql
fi
pg_version=$(ls /etc/postgresql | sort -n | tail -n 1)
if ! pg_ctlcluster "$pg_version" main status >/dev/null 2>&1; then
  say "starting PostgreSQL $pg_version"
  $SUDO pg_ctlcluster "$pg_version" main start
fi
pg_sql() { (cd / && su postgres -c "psql -qtAc \"$1\""); }
if [ "$(pg_sql "SELECT 1 FROM pg_roles WHERE rolname='executor'")" != "1" ]; then
  say "creating the PostgreSQL role 'executor' (password 'executor', loopback only)"
  pg_sql "CREATE ROLE executor LOGIN PASSWORD 'executor' CREATEDB"
fi
# The tests and the bench drop their databases WITH (FORCE), which also ends an autovacuum
# worker busy in one; ending a process that is not the role's own takes pg_signal_backend.
if [ "$(pg_sql "SELECT pg_has_role('executor', 'pg_signal_backend', 'member')")" != "t" ]; then
  pg_sql "GRANT pg_signal_backend TO executor"
fi

# The monitoring tests (tests/integration/test_prometheus.py) run promtool and start their
# own Prometheus on a free loopback port; the package's service must not hold port 9090.
if ! command -v promtool >/dev/null 2>&1; then
  say "installing Prometheus (Debian's prometheus: promtool and the server)"
  if [ -z "${APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
else
  $SUDO service prometheus stop >/dev/null 2>&1 || true
  $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
fi

# Images through a registry (deploy/registry.sh, the registry tests): Debian's CNCF
# Distribution registry and htpasswd; the package's own service on :5000 stays off.
if [ ! -x /usr/bin/docker-registry ] || ! command -v htpasswd >/dev/null 2>&1; then
  say "installing Debian's docker-registry and htpasswd (apache2-utils)"
  apt_install docker-registry apache2-utils
fi
if [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
else
  $SUDO service docker-registry stop >/dev/null 2>&1 || true
  $SUDO update-rc.d docker-registry disable >/dev/null 2>&1 || true
fi

command -v docker-compose >/dev/null 2>&1 || { say "installing docker-compose"; apt_install docker-compose; }

if ! python3 -m venv --help >/dev/null 2>&1; then apt_install python3-venv; fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
say "installing the package into .venv (versions from deploy/requirements.lock)"
# The lock (uv pip compile pyproject.toml --extra dev) pins the service and its dev tools, so
# CI and the README's figures run on the same versions everywhere; the package itself is
# installed without resolving anything more. uv (its version from the lock, put in by pip)
# installs the lock, many packages at once, and compiles their bytecode: each server and CLI
# would otherwise compile what it imports.
.venv/bin/python -m pip install -q --disable-pip-version-check "$(grep -m1 '^uv==' deploy/requirements.lock)"
uv_install=(.venv/bin/uv pip install -q --python .venv/bin/python --compile-bytecode)
"${uv_install[@]}" -r deploy/requirements.lock
"${uv_install[@]}" --no-deps -e .
say "set-up done"
