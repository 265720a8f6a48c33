#!/usr/bin/env bash
# The benchmark in one command: builds Lightport and the mock upstream, installs the load
# generator (oha, from crates.io) if missing and, with --peers, LiteLLM's proxy (PyPI) and
# Portkey's gateway (npm) under target/bench-peers; then runs them all against the same mock
# and prints the table (also written to target/bench-report.md).
#
#   examples/bench/run.sh [--peers] [--duration S] [--rate RPS] [--connections N]
#                         [--routing-rounds N] [--routing-only]
set -euo pipefail
cd "$(dirname "$0")/../.."
peers=0
args=()
for a in "$@"; do
  case "$a" in
    --peers) peers=1 ;;
    *) args+=("$a") ;;
  esac
done
command -v oha >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/oha" ] || cargo install oha --locked
command -v taskset >/dev/null 2>&1 || { echo "taskset (util-linux) is needed to pin processes to cores" >&2; exit 1; }
if [ "$peers" = 1 ]; then
  mkdir -p target/bench-peers
  if [ ! -x target/bench-peers/venv/bin/litellm ]; then
    python3 -m venv target/bench-peers/venv
    target/bench-peers/venv/bin/pip install -q 'litellm[proxy]'
  fi
  if [ ! -f target/bench-peers/portkey/node_modules/@portkey-ai/gateway/build/start-server.js ]; then
    npm install --silent --prefix target/bench-peers/portkey @portkey-ai/gateway
  fi
fi
cargo build --release --locked --bin lightport --example bench_mock --example bench
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The driver (readiness checks, time-to-first-chunk client) shares core 1 with the mock and oha.
exec taskset -c 1 target/release/examples/bench "${args[@]+"${args[@]}"}"
