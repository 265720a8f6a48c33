#!/usr/bin/env bash
# Lightport with curl: non-stream, stream (Server-Sent Events) and a tool call.
#
#   ANTHROPIC_API_KEY=... cargo run --release -- serve &
#   examples/clients/curl.sh anthropic/claude-sonnet-4-6
#
# LIGHTPORT_URL (default http://127.0.0.1:8080/v1) and LIGHTPORT_KEY (a gateway key, when the
# gateway has keys) say where and as whom. tests/clients.rs runs it against a mock provider.
set -euo pipefail
model="${1:-anthropic/claude-sonnet-4-6}"
url="${LIGHTPORT_URL:-http://127.0.0.1:8080/v1}"
auth=(-H "authorization: Bearer ${LIGHTPORT_KEY:-unused-when-the-gateway-has-keys}")

echo "non-stream:"
curl -sS --fail-with-body "$url/chat/completions" "${auth[@]}" -H 'content-type: application/json' -d '{
  "model": "'"$model"'",
  "messages": [{"role": "user", "content": "Say hello in five words."}]
}'
echo

echo "stream:"
curl -sS -N --fail-with-body "$url/chat/completions" "${auth[@]}" -H 'content-type: application/json' -d '{
  "model": "'"$model"'", "stream": true, "stream_options": {"include_usage": true},
  "messages": [{"role": "user", "content": "Count from 1 to 5."}]
}'

echo "tool call:"
curl -sS --fail-with-body "$url/chat/completions" "${auth[@]}" -H 'content-type: application/json' -d '{
  "model": "'"$model"'",
  "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
  "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
}'
echo
