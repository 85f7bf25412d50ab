#!/usr/bin/env bash
# The main job: set up, start the executor (127.0.0.1:8700, embedded SQLite) and the
# reference labeling platform (127.0.0.1:9000), then run the QA bot demo for real: upload
# and activate examples/qa_bot, submit one valid and one invalid invoice label on the
# platform, and print the issues the plugin created, each asset's status and metadata, and
# the plugin's logs. Both servers keep running afterwards; stop them with
#   kill "$(cat var/server.pid)" "$(cat var/platform.pid)"
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh

export EXECUTOR_DATA_DIR="${EXECUTOR_DATA_DIR:-$PWD/var}"
export EXECUTOR_PORT="${EXECUTOR_PORT:-8700}"
export EXECUTOR_URL="http://127.0.0.1:${EXECUTOR_PORT}"
platform_port="${PLATFORM_PORT:-9000}"
platform_url="http://127.0.0.1:${platform_port}"
if [ -z "${EXECUTOR_BUILD_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export EXECUTOR_BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
mkdir -p "$EXECUTOR_DATA_DIR"
data=$EXECUTOR_DATA_DIR
cli=.venv/bin/plugin-executor
py=.venv/bin/python

# Secrets shared by the two servers, made once and kept in files only the owner can read.
secret() {
  [ -s "$1" ] || (umask 077; "$py" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$1")
  cat "$1"
}
service_key=$(secret "$data/platform_service_key")   # what plugins act with, via the gateway
admin_key=$(secret "$data/platform_admin_key")

up() { curl -fs "$1/healthz" >/dev/null 2>&1; }
wait_up() {  # URL LOG
  for _ in $(seq 60); do up "$1" && return 0; sleep 0.5; done
  cat "$2"; echo "$1 did not come up: see $2" >&2; exit 1
}

if ! up "$EXECUTOR_URL"; then
  echo "==> starting the executor on $EXECUTOR_URL (log: $data/server.log)"
  EXECUTOR_PLATFORM_API_URL="$platform_url/api/v1/projects/{project_id}" \
  EXECUTOR_PLATFORM_CREDENTIAL="$service_key" \
    setsid "$cli" serve >"$data/server.log" 2>&1 </dev/null &
  echo $! >"$data/server.pid"
  wait_up "$EXECUTOR_URL" "$data/server.log"
  grep -A2 "operator API key" "$data/server.log" || true  # rich may wrap the line
fi
operator_key="${EXECUTOR_OPERATOR_KEY:-$(cat "$data/operator_key")}"

if ! up "$platform_url"; then
  echo "==> starting the reference labeling platform on $platform_url (log: $data/platform.log)"
  PLATFORM_PORT="$platform_port" PLATFORM_DATABASE_PATH="$data/platform.db" \
  PLATFORM_ADMIN_KEY="$admin_key" PLATFORM_SERVICE_KEY="$service_key" \
  PLATFORM_EXECUTOR_URL="$EXECUTOR_URL" PLATFORM_EXECUTOR_API_KEY="$operator_key" \
    setsid "$py" -m examples.labeling_platform >"$data/platform.log" 2>&1 </dev/null &
  echo $! >"$data/platform.pid"
  wait_up "$platform_url" "$data/platform.log"
fi

echo "==> demo: push examples/qa_bot (IBAN must start with FR, currency EUR or USD)"
"$cli" push examples/qa_bot
echo "==> demo: activate it on project demo-invoices"
"$cli" activate qa_bot --project demo-invoices
echo "==> demo: submit one valid and one invalid invoice label on the platform"
"$py" -m examples.demo --platform "$platform_url" --platform-key-file "$data/platform_admin_key"
echo
echo "The executor ($EXECUTOR_URL) and the platform ($platform_url) keep running;"
echo "stop them with: kill \$(cat $data/server.pid) \$(cat $data/platform.pid)"
