#!/usr/bin/env bash
# The benchmark in one command: builds Lightport and the mock upstream, installs the load
# generator (oha, from crates.io) if missing and, with --peers, LiteLLM's proxy (PyPI),
# Portkey's gateway (npm) and Lightport-TS (cloned from $LIGHTPORT_TS_GIT, default its GitHub
# repository, and built with pnpm) under target/bench-peers; then runs them all against the
# same mock and prints the table (also written to target/bench-report.md). A peer that cannot be
# installed is left out of the run, with a line saying so.
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
  # Lightport-TS needs Node >= 22 (undici 8); Node from npm's per-platform package when older.
  if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 22 ] &&
    [ ! -x target/bench-peers/node/node_modules/.bin/node ]; then
    case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
    npm install --silent --prefix target/bench-peers/node "node-linux-$arch@24" ||
      echo "Node 24 could not be installed; Lightport-TS will not start" >&2
  fi
  ts=target/bench-peers/lightport-ts
  if [ ! -f "$ts/build/start-server.mjs" ]; then
    rm -rf "$ts"
    { git clone --quiet --depth 1 "${LIGHTPORT_TS_GIT:-https://github.com/glama-ai/lightport}" "$ts" &&
      (cd "$ts" && npx --yes pnpm@10 install --frozen-lockfile --silent && npx --yes pnpm@10 build >/dev/null); } ||
      echo "Lightport-TS could not be cloned or built; it is left out of this run" >&2
  fi
fi
cargo build --release --locked --bin lightport --example bench_mock --example bench
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The driver (readiness checks, time-to-first-chunk client) shares core 1 with the mock and oha.
exec taskset -c 1 target/release/examples/bench "${args[@]+"${args[@]}"}"
