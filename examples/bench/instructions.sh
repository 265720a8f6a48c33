#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by callgrind rather than timed: the same
# on a busy VM as on a quiet one, so a change of a few percent shows. For each scenario it runs
# `lightport serve` under callgrind twice against the benchmark's mock (once with only the
# warm-up requests, once with N more, over 4 kept-alive connections from oha) and prints the
# difference per request: start-up, loading and warm-up cancel out. User-space instructions
# only (the kernel's share is not counted). Needs valgrind, curl and oha.
#
#   examples/bench/instructions.sh [N]        # default N=1000 (500 for streams)
#
# Keep the output files (target/callgrind/*.out) for `callgrind_annotate` to see where they go.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in valgrind curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is needed (apt-get install $tool)" >&2; exit 1; }
done
command -v oha >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/oha" ] || cargo install oha --locked
PATH="$HOME/.cargo/bin:$PATH"
n="${1:-1000}"
cargo build --release --locked --bin lightport --example bench_mock
out=target/callgrind
mkdir -p "$out"
mock=127.0.0.1:19170
gw=127.0.0.1:19171
target/release/examples/bench_mock "$mock" >"$out/mock.log" 2>&1 &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null || true' EXIT

# $1 label, $2 model, $3 stream, $4 requests after the warm-up
run() {
  local body="{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":$3}"
  LIGHTPORT_LOG=warn ANTHROPIC_BASE_URL="http://$mock" ANTHROPIC_API_KEY=k OPENAI_BASE_URL="http://$mock/v1" \
    OPENAI_API_KEY=k valgrind --tool=callgrind --callgrind-out-file="$out/$1.out" \
    target/release/lightport serve --listen "$gw" >"$out/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -sf "http://$gw/health" >/dev/null && break; sleep 0.2; done
  local post=(--no-tui -c 4 -m POST -H 'content-type: application/json' -d "$body" "http://$gw/v1/chat/completions")
  oha -n 8 "${post[@]}" >/dev/null
  [ "$4" -gt 0 ] && oha -n "$4" "${post[@]}" >"$out/$1.oha"
  kill -INT "$pid"
  wait "$pid" || true
}

total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

printf '| scenario | instructions / request |\n|---|---|\n'
for s in "OpenAI pass-through|gpt-4o-mini|false|$n" \
  "Anthropic translation|claude-sonnet-4-5|false|$n" \
  "OpenAI pass-through, stream|gpt-4o-mini|true|$((n / 2))" \
  "Anthropic translation, stream|claude-sonnet-4-5|true|$((n / 2))"; do
  IFS='|' read -r name model stream count <<<"$s"
  label="$(echo "$name" | tr -cd 'a-zA-Z')"
  run "${label}_0" "$model" "$stream" 0
  run "${label}_n" "$model" "$stream" "$count"
  grep -q '\[200\] '"$count"' responses' "$out/${label}_n.oha" ||
    { echo "$name: not every request answered 200 (see $out/${label}_n.oha)" >&2; exit 1; }
  a="$(total "$out/${label}_0.out")"
  b="$(total "$out/${label}_n.out")"
  printf '| %s | %sk |\n' "$name" "$(((b - a) / count / 100))" | sed -E 's/\| ([0-9]+)([0-9])k \|$/| \1.\2k |/'
done
