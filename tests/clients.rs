//! The client examples in `examples/clients/` (curl, the official OpenAI Python and Node SDKs)
//! run against a gateway whose Anthropic upstream is a mock speaking the Messages API: each
//! does a plain call, a stream and a tool-call round trip.
//!
//! The SDKs come from the package registries: `.ci/run` installs them under `target/sdk/` and
//! sets LIGHTPORT_REQUIRE_SDKS=1, so that in CI a missing SDK fails the test; elsewhere a
//! missing SDK skips its example with a note.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use common::*;
use serde_json::{json, Value};

/// An Anthropic Messages API upstream (https://docs.anthropic.com/en/api/messages): a stream
/// (the golden vector's), a `tool_use` answer when tools are offered and no tool result is
/// back yet, and a text answer otherwise.
async fn anthropic() -> String {
    let stream = std::fs::read(fixtures().join("anthropic/stream_text_include_usage/upstream_response.txt")).unwrap();
    let app = axum::Router::new().fallback(move |req: Request| {
        let stream = stream.clone();
        async move {
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if body["stream"] == true {
                return Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from(stream))
                    .unwrap();
            }
            let answered = body["messages"].to_string().contains("tool_result");
            let content = if body["tools"].is_array() && !answered {
                json!([{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}])
            } else if answered {
                json!([{"type": "text", "text": "It is 18C and sunny in Paris."}])
            } else {
                json!([{"type": "text", "text": "Hello there, nice to meet."}])
            };
            let stop = if content[0]["type"] == "tool_use" { "tool_use" } else { "end_turn" };
            let v = json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": content, "stop_reason": stop, "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 6}});
            Response::builder().header("content-type", "application/json").body(Body::from(v.to_string())).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The program to run an example with, or why it cannot run here.
fn runtime(kind: &str) -> Result<Command, String> {
    match kind {
        "python" => {
            let venv = repo().join("target/sdk/venv/bin/python");
            let python = if venv.is_file() { venv } else { PathBuf::from("python3") };
            // Without a venv (Debian's python3 lacks ensurepip), .ci/run installs with --target.
            let with_site = |mut c: Command| {
                let site = repo().join("target/sdk/site");
                if site.is_dir() {
                    c.env("PYTHONPATH", site);
                }
                c
            };
            let probe = with_site(Command::new(&python)).args(["-c", "import openai"]).output();
            match probe {
                Ok(o) if o.status.success() => Ok(with_site(Command::new(python))),
                _ => Err("the openai Python SDK is not installed (.ci/run installs it in target/sdk/venv)".into()),
            }
        }
        "node" => {
            if !repo().join("target/sdk/node_modules/openai/package.json").is_file() {
                return Err("the openai Node SDK is not installed (.ci/run installs it in target/sdk)".into());
            }
            let mut c = Command::new("node");
            c.env("NODE_PATH", repo().join("target/sdk/node_modules"));
            Ok(c)
        }
        _ => {
            let probe = Command::new("curl").arg("--version").output();
            match probe {
                Ok(o) if o.status.success() => Ok(Command::new("bash")),
                _ => Err("curl is not installed".into()),
            }
        }
    }
}

async fn run_example(kind: &str, file: &str) -> Option<String> {
    let mut cmd = match runtime(kind) {
        Ok(c) => c,
        Err(why) if std::env::var_os("LIGHTPORT_REQUIRE_SDKS").is_some() => panic!("{file}: {why}"),
        Err(why) => {
            eprintln!("skipping {file}: {why}");
            return None;
        }
    };
    let upstream = anthropic().await;
    let gw =
        gateway(&[("ANTHROPIC_BASE_URL", upstream), ("ANTHROPIC_API_KEY", "sk-ant-test".into())], quick_config()).await;
    let script = repo().join("examples/clients").join(file);
    // Node resolves an ES module's imports from the module's own directory upwards, not
    // NODE_PATH: run a copy beside the installed SDK.
    let script = if kind == "node" {
        let copy = repo().join("target/sdk").join(file);
        std::fs::copy(&script, &copy).unwrap();
        copy
    } else {
        script
    };
    cmd.arg(&script).arg("anthropic/claude-sonnet-4-6").env("LIGHTPORT_URL", gw.url("/v1"));
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run the example");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{file} failed:\n{stdout}\n{stderr}");
    Some(stdout)
}

/// What every example prints: the plain answer, the streamed text, the tool call, the answer
/// after the tool result.
fn check(out: &str) {
    assert!(out.contains("Hello there, nice to meet."), "no plain answer:\n{out}");
    // The golden vector's streamed text, whole.
    let joined = out.contains("Hello! How can I help you today?");
    let as_events = out.contains("\"content\":\"Hello\"") && out.contains("you today?");
    assert!(joined || as_events, "no streamed text:\n{out}");
    assert!(out.contains("get_weather") && out.contains("Paris"), "no tool call:\n{out}");
}

#[tokio::test]
async fn the_python_sdk_example_runs() {
    if let Some(out) = run_example("python", "openai_sdk.py").await {
        check(&out);
        assert!(out.contains("final: It is 18C and sunny in Paris."), "{out}");
    }
}

#[tokio::test]
async fn the_node_sdk_example_runs() {
    if let Some(out) = run_example("node", "openai_sdk.mjs").await {
        check(&out);
        assert!(out.contains("final: It is 18C and sunny in Paris."), "{out}");
    }
}

#[tokio::test]
async fn the_curl_example_runs() {
    if let Some(out) = run_example("curl", "curl.sh").await {
        check(&out);
        assert!(out.contains("data: [DONE]"), "{out}");
        assert!(out.contains("\"finish_reason\":\"tool_calls\""), "{out}");
    }
}
