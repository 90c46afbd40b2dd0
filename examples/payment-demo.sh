#!/usr/bin/env bash
# A payment, end to end, on one machine (README "A payment, end to end"; issue 6):
#   capture -> token -> forwarded charge to the sandbox processor -> its signed webhook,
#   received and recorded by the vault.
#
# The vault must already be running with the two demo switches (never in production):
#
#   PAYVAULT_OUTBOUND_ALLOW_LOOPBACK=on \
#   PAYVAULT_OUTBOUND_CA_FILE=.payvault/sandbox-processor/tls/localhost.crt npm start
#
# then, in another terminal from the same directory: bash examples/payment-demo.sh
#
# Settings (environment):
#   PAYVAULT_URL       the vault                      (default https://localhost:8443)
#   PAYVAULT_DATA_DIR  the vault's data directory     (default .payvault)
#   PAYVAULT_CA        the vault's certificate        (default <data dir>/tls/localhost.crt)
#   PAYVAULT_API_KEY   a key with capture, proxy:forward, webhooks:manage and tenant:admin
#                                                     (default <data dir>/bootstrap-key)
#   SANDBOX_PORT       the sandbox processor's port   (default 8444)
#   PAYVAULT_CLI       the payvault command line      (default node <repo>/dist/cli/main.js)
#
# Only curl and node are needed. The card is a public test card (docs/sandbox-processor.md);
# nothing here ever prints a card number.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
V=${PAYVAULT_URL:-https://localhost:8443}
DATA=${PAYVAULT_DATA_DIR:-.payvault}
CA=${PAYVAULT_CA:-$DATA/tls/localhost.crt}
SANDBOX_PORT=${SANDBOX_PORT:-8444}
SANDBOX_DIR=$DATA/sandbox-processor
SANDBOX_CA=$SANDBOX_DIR/tls/localhost.crt   # the vault's PAYVAULT_OUTBOUND_CA_FILE
if [[ -n ${PAYVAULT_CLI:-} ]]; then
  read -r -a cli <<<"$PAYVAULT_CLI"
else
  cli=(node "$here/../dist/cli/main.js")
  [[ -f ${cli[1]} ]] || { echo "payment-demo: run 'npm run build' first (or set PAYVAULT_CLI)" >&2; exit 1; }
fi

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'payment-demo: FAILED: %s\n' "$*" >&2; exit 1; }

# Scratch space only this user can read: the curl settings (the API key stays out of `ps`) and
# the webhook secret. Removed on exit, when the sandbox processor is stopped too.
work=$(mktemp -d)
chmod 700 "$work"
sandbox_pid=
cleanup() {
  if [[ -n $sandbox_pid ]]; then
    kill -TERM "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

KEY=${PAYVAULT_API_KEY:-$(cat "$DATA/bootstrap-key" 2>/dev/null)} ||
  fail "no $DATA/bootstrap-key: start the vault first, or set PAYVAULT_API_KEY"
(
  umask 077
  printf 'cacert = "%s"\nheader = "Authorization: Bearer %s"\n' "$CA" "$KEY" >"$work/curl.conf"
  printf 'header = "Content-Type: application/json"\nsilent\nshow-error\n' >>"$work/curl.conf"
)

# api METHOD PATH [BODY]: the answer's body goes to $work/body, its status to stdout. The body
# goes through stdin, not the command line, where `ps` would show it.
api() {
  local args=(-K "$work/curl.conf" -X "$1" -o "$work/body" -w '%{http_code}')
  if [[ $# -ge 3 ]]; then
    curl "${args[@]}" --data-binary @- "$V$2" <<<"$3" || fail "$1 $2: could not reach the vault at $V"
  else
    curl "${args[@]}" "$V$2" || fail "$1 $2: could not reach the vault at $V"
  fi
}
# json EXPR [ARG]: evaluates EXPR over the last answer `o`, with ARG as `arg` (node -pe: strings
# print bare). Values go in as an argument, never into the code.
json() {
  node -pe "const o = JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'));
    const arg = process.argv[2]; $1" "$work/body" "${2:-}"
}
expect_status() { # expect_status WANTED GOT WHAT: problem documents carry codes, never card data
  [[ $2 == "$1" ]] || fail "$3: HTTP $2 $(json 'o.code ?? ""' 2>/dev/null) $(json 'o.detail ?? ""' 2>/dev/null)"
}

step "The vault at $V"
status=$(api GET /readyz)
expect_status 200 "$status" "GET /readyz"
echo "ready"

step "Register a Stripe webhook intake endpoint with a fresh secret (POST /v1/webhook-endpoints)"
secret="whsec_$(node -pe "require('node:crypto').randomBytes(24).toString('hex')")"
(umask 077 && printf '%s\n' "$secret" >"$work/whsec.txt")
status=$(api POST /v1/webhook-endpoints \
  "{\"provider\":\"stripe\",\"secret\":\"$secret\",\"description\":\"payment demo: sandbox processor\"}")
unset secret
expect_status 201 "$status" "register the webhook endpoint"
endpoint=$(json o.id)
echo "endpoint $endpoint: $(json o.url)"

step "Start the sandbox processor on port $SANDBOX_PORT, sending its webhooks to that endpoint"
mkdir -p "$SANDBOX_DIR"
"${cli[@]}" sandbox-processor --port "$SANDBOX_PORT" --cert-dir "$SANDBOX_DIR" \
  --vault-url "$V" --webhook-endpoint "$endpoint" --webhook-secret-file "$work/whsec.txt" \
  --vault-ca "$CA" >"$SANDBOX_DIR/sandbox.log" 2>&1 &
sandbox_pid=$!
for _ in $(seq 1 120); do
  if [[ -f $SANDBOX_CA ]] &&
    curl -s -o /dev/null --cacert "$SANDBOX_CA" "https://localhost:$SANDBOX_PORT/"; then
    break
  fi
  kill -0 "$sandbox_pid" 2>/dev/null || { tail -n 20 "$SANDBOX_DIR/sandbox.log" >&2; fail "the sandbox processor stopped"; }
  sleep 0.5
done
curl -s -o /dev/null --cacert "$SANDBOX_CA" "https://localhost:$SANDBOX_PORT/" ||
  fail "the sandbox processor does not answer on port $SANDBOX_PORT"
rm -f "$work/whsec.txt" # read once at its start
echo "answering on https://localhost:$SANDBOX_PORT (log: $SANDBOX_DIR/sandbox.log)"

step "Allow the vault to forward card data to it (POST /v1/forward/destinations)"
status=$(api POST /v1/forward/destinations \
  "{\"host\":\"localhost:$SANDBOX_PORT\",\"path_prefix\":\"/v1/charges\"}")
if [[ $status == 409 ]]; then
  echo "localhost:$SANDBOX_PORT/v1/charges was already allowed"
else
  expect_status 201 "$status" "allow the forward destination"
  echo "allowed $(json o.host)$(json o.path_prefix) as $(json o.id)"
fi

step "Capture a card: a capture session, then the card encrypted to the vault's key (JWE)"
status=$(api POST /v1/capture/sessions '{"origins":["https://shop.example"]}')
expect_status 201 "$status" "open a capture session"
TOKEN=$(CAPTURE_SESSION=$(json o.session) PAYVAULT_URL=$V PAYVAULT_CA=$CA \
  node "$here/capture-client.mjs") || fail "capture"
echo "token $TOKEN (the CVC is held in the ephemeral store until authorization)"

# The charge, with the token's fields where the card would be: the vault fills them in.
charge="{\"url\":\"https://localhost:$SANDBOX_PORT/v1/charges\",\"body\":{\"amount\":1000,\"currency\":\"usd\",
  \"card\":{\"number\":\"{{ $TOKEN.number }}\",\"exp_month\":\"{{ $TOKEN.exp_month }}\",
  \"exp_year\":\"{{ $TOKEN.exp_year }}\",\"cvc\":\"{{ $TOKEN.cvc }}\"},\"description\":\"payvault payment demo\"}}"

step "Forward a charge to the sandbox processor with the token (POST /v1/forward)"
status=$(api POST /v1/forward "$charge")
if [[ $status == 502 ]]; then
  echo "hint: was the vault started with PAYVAULT_OUTBOUND_CA_FILE=$SANDBOX_CA ?" >&2
fi
expect_status 200 "$status" "forward the charge"
processor_status=$(json o.status)
[[ $processor_status == 200 ]] || fail "the sandbox processor answered $processor_status"
charge_id=$(json 'JSON.parse(o.body).id')
authorization=$(json 'JSON.parse(o.body).authorization_id')
echo "sandbox: 200 $charge_id $(json 'JSON.parse(o.body).status'), authorization $authorization," \
  "card $(json 'JSON.parse(o.body).card.brand') ending in $(json 'JSON.parse(o.body).card.last4')"

step "Forward it again: the CVC was deleted once sent (PCI DSS 3.3.1.2)"
status=$(api POST /v1/forward "$charge")
expect_status 422 "$status" "a second forward with the CVC"
echo "refused: 422 $(json o.code), nothing sent"

step "The sandbox's signed charge.succeeded webhook, received and recorded (GET /v1/webhook-events)"
event=
for _ in $(seq 1 40); do
  status=$(api GET "/v1/webhook-events?endpoint_id=$endpoint")
  expect_status 200 "$status" "list the webhook events"
  event=$(json "const e = o.data.find((e) => e.type === 'charge.succeeded' &&
    e.metadata['data.object.authorization_id'] === arg);
    e ? [e.id, e.provider_event_id, e.state, e.metadata['data.object.amount'], e.metadata['data.object.currency']].join(' ') : ''" \
    "$authorization")
  [[ -n $event ]] && break
  sleep 0.5
done
[[ -n $event ]] || fail "no charge.succeeded event for $authorization reached the vault"
read -r event_id provider_event state amount currency <<<"$event"
echo "event $event_id: charge.succeeded $provider_event for $authorization, $amount $currency, state $state"

step "Done: capture -> token -> forwarded charge -> webhook received and recorded"
