#!/usr/bin/env bash
# Sets up the OCI registry plugin images go through (docs/scaling.md, "Images through a
# registry"): Debian's docker-registry (the CNCF Distribution registry) with htpasswd
# (bcrypt) auth, TLS from a CA made here, deletes enabled (retention), its own config and
# data in DIR, listening on ADDR:PORT. The engine on this host trusts the CA through
# /etc/docker/certs.d/ADDR:PORT/ca.crt (no daemon restart needed); copy DIR/ca.crt there on
# every other engine's host, and give it to the executor as EXECUTOR_REGISTRY_CA_BUNDLE.
# Idempotent: the CA and certificate are made once; the password file is rewritten.
#
#   deploy/registry.sh [--serve] DIR ADDR:PORT USER < password-file
#
# The password is read from stdin (never an argument or environment variable). Without
# --serve, a systemd unit (plugin-executor-registry) runs the registry when systemd is
# there; with --serve, the registry runs in the foreground (tests, containers).
#   deploy/registry.sh gc DIR     # the registry's garbage collection (run it while idle)
set -euo pipefail

if [[ "${1:-}" == "gc" ]]; then
    exec /usr/bin/docker-registry garbage-collect --delete-untagged "$2/config.yml"
fi
serve=false
if [[ "${1:-}" == "--serve" ]]; then
    serve=true
    shift
fi
if [[ $# -ne 3 ]]; then
    echo "usage: $0 [--serve] DIR ADDR:PORT USER < password-file  |  $0 gc DIR" >&2
    exit 2
fi
dir=$(realpath -m "$1")
listen=$2
user=$3
host=${listen%:*}

if [[ ! -x /usr/bin/docker-registry || ! -x /usr/bin/htpasswd ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y docker-registry apache2-utils >&2
fi
# Debian's own service listens on :5000 with its own config: this one replaces it.
if command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
    systemctl disable docker-registry >&2
    systemctl stop docker-registry 2>/dev/null || true # no systemd running: nothing to stop
fi

mkdir -p "$dir/data"
chmod 700 "$dir"
if [[ ! -f "$dir/ca.crt" ]]; then
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=plugin-executor registry CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
if [[ "$host" =~ ^[0-9.]+$ ]]; then san="IP:$host"; else san="DNS:$host"; fi
if [[ ! -f "$dir/server.crt" || "$(cat "$dir/server.san" 2>/dev/null)" != "$san" ]]; then
    openssl req -newkey rsa:3072 -nodes -subj "/CN=$host" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 825 -out "$dir/server.crt" \
        -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") 2>/dev/null
    echo "$san" >"$dir/server.san"
fi
# bcrypt (-B), the only hash the registry accepts; the password comes from stdin (-i).
htpasswd -B -i -c "$dir/htpasswd" "$user" 2>/dev/null

cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $listen
  tls:
    certificate: $dir/server.crt
    key: $dir/server.key
auth:
  htpasswd:
    realm: plugin-executor-registry
    path: $dir/htpasswd
EOF

mkdir -p "/etc/docker/certs.d/$listen"
cp "$dir/ca.crt" "/etc/docker/certs.d/$listen/ca.crt"

if $serve; then
    exec /usr/bin/docker-registry serve "$dir/config.yml"
fi
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    cat >/etc/systemd/system/plugin-executor-registry.service <<EOF
[Unit]
Description=OCI registry for plugin-executor images
After=network-online.target

[Service]
ExecStart=/usr/bin/docker-registry serve $dir/config.yml
Restart=on-failure

[Install]
WantedBy=multi-user.target
EOF
    systemctl daemon-reload
    systemctl enable --now plugin-executor-registry
else
    echo "no systemd: run  /usr/bin/docker-registry serve $dir/config.yml" >&2
fi
