"""Lightport from the official OpenAI Python SDK: non-stream, stream and tool calling.

    pip install openai
    ANTHROPIC_API_KEY=... cargo run --release -- serve &
    python examples/clients/openai_sdk.py anthropic/claude-sonnet-4-6

LIGHTPORT_URL (default http://127.0.0.1:8080/v1) and LIGHTPORT_KEY (a gateway key, when the
gateway has keys) say where and as whom. tests/clients.rs runs it against a mock provider.
"""
import json
import os
import sys

from openai import OpenAI

model = sys.argv[1] if len(sys.argv) > 1 else "anthropic/claude-sonnet-4-6"
client = OpenAI(
    base_url=os.environ.get("LIGHTPORT_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ.get("LIGHTPORT_KEY", "unused-when-the-gateway-has-keys"),
)

reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hello in five words."}])
print("non-stream:", reply.choices[0].message.content, reply.usage)

print("stream: ", end="")
for chunk in client.chat.completions.create(
    model=model,
    stream=True,
    stream_options={"include_usage": True},
    messages=[{"role": "user", "content": "Count from 1 to 5."}],
):
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    elif chunk.usage:
        print("\nusage:", chunk.usage)

tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]
reply = client.chat.completions.create(model=model, messages=messages, tools=tools)
call = reply.choices[0].message.tool_calls[0]
print("tool call:", call.function.name, json.loads(call.function.arguments))
messages += [reply.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
print("final:", client.chat.completions.create(model=model, messages=messages, tools=tools).choices[0].message.content)
