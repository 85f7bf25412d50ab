#!/usr/bin/env bash
# The main job: set up, start the executor on 127.0.0.1 with its embedded SQLite database,
# then run a short demo (upload an example plugin, activate it, post an event, print logs).
# The server keeps running afterwards; stop it with: kill "$(cat var/server.pid)".
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh

export EXECUTOR_DATA_DIR="${EXECUTOR_DATA_DIR:-$PWD/var}"
export EXECUTOR_PORT="${EXECUTOR_PORT:-8700}"
export EXECUTOR_URL="http://127.0.0.1:${EXECUTOR_PORT}"
if [ -z "${EXECUTOR_BUILD_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export EXECUTOR_BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
mkdir -p "$EXECUTOR_DATA_DIR"
cli=.venv/bin/plugin-executor

if ! curl -fs "$EXECUTOR_URL/healthz" >/dev/null 2>&1; then
  echo "==> starting the executor on $EXECUTOR_URL (log: $EXECUTOR_DATA_DIR/server.log)"
  setsid "$cli" serve >"$EXECUTOR_DATA_DIR/server.log" 2>&1 </dev/null &
  echo $! >"$EXECUTOR_DATA_DIR/server.pid"
  for _ in $(seq 60); do curl -fs "$EXECUTOR_URL/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fs "$EXECUTOR_URL/healthz" >/dev/null || { cat "$EXECUTOR_DATA_DIR/server.log"; exit 1; }
  grep -A1 "operator API key" "$EXECUTOR_DATA_DIR/server.log" || true
fi

echo "==> demo: push examples/invoice_qa"
"$cli" push examples/invoice_qa
echo "==> demo: activate it on project demo-invoices"
"$cli" activate invoice_qa --project demo-invoices
echo "==> demo: post an onSubmit event (an invoice with a German IBAN, paid in GBP)"
"$cli" event --file examples/invoice_qa/sample_event.json --wait
echo "==> demo: the plugin's logs"
"$cli" logs invoice_qa --project demo-invoices
echo
echo "The executor keeps running on $EXECUTOR_URL (stop: kill \$(cat $EXECUTOR_DATA_DIR/server.pid))."
