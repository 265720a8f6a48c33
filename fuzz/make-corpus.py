#!/usr/bin/env python3
"""Write the fuzz targets' seed corpus from the golden vectors (tests/fixtures).

Each entry starts with the byte(s) the target reads first: the provider (an index into the
built-in providers sorted by id, which is the order of the fixture folders) and, for streams, how the rest is cut; for answers, a status.
Run from the repository: python3 fuzz/make-corpus.py
"""
import json, pathlib, struct, zlib

root = pathlib.Path(__file__).resolve().parent.parent
fixtures = root / "tests" / "fixtures"
PROVIDERS = sorted(p.name for p in fixtures.iterdir() if p.is_dir())
out = root / "fuzz" / "corpus"
for target in ("stream", "request", "response"):
    (out / target).mkdir(parents=True, exist_ok=True)

FRAMING = {"ollama": "ndjson", "bedrock": "aws"}


def aws_frame(event, payload):
    """One AWS event-stream frame: prelude, CRC, string headers, payload, CRC."""
    headers = b""
    for k, v in ((":event-type", event), (":content-type", "application/json"), (":message-type", "event")):
        headers += bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
    total = 16 + len(headers) + len(payload)
    prelude = struct.pack(">II", total, len(headers))
    frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return frame + struct.pack(">I", zlib.crc32(frame))


def framed(provider, events):
    out = b""
    for ev in events:
        name = ev.get("event", "message")
        data = ev.get("data", "")
        data = (data if isinstance(data, str) else json.dumps(data)).encode()
        kind = FRAMING.get(provider, "sse")
        if kind == "aws":
            out += aws_frame(name, data)
        elif kind == "ndjson":
            out += data + b"\n"
        else:
            out += b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"
    return out


count = {"stream": 0, "request": 0, "response": 0}
for i, provider in enumerate(PROVIDERS):
    for case in sorted((fixtures / provider).iterdir()):
        name = f"{provider}-{case.name}"
        req = case / "request.json"
        if req.exists():
            (out / "request" / name).write_bytes(bytes([i]) + req.read_bytes())
            count["request"] += 1
        raw = case / "upstream_response.txt"
        events = case / "upstream_events.json"
        stream = raw.read_bytes() if raw.exists() else framed(provider, json.loads(events.read_text())) if events.exists() else None
        if stream is not None:
            (out / "stream" / name).write_bytes(bytes([i, 3]) + stream)
            count["stream"] += 1
        resp = case / "upstream_response.json"
        if resp.exists():
            r = json.loads(resp.read_text())
            body = json.dumps(r.get("body")).encode()
            status = max(0, int(r.get("status", 200)) - 400)
            (out / "response" / name).write_bytes(bytes([i, status % 200]) + body)
            count["response"] += 1
print("seed corpus:", count)
