//! The test matrix: every golden vector of every built-in mapping, replayed end to end through
//! the real server on 127.0.0.1 against a mock upstream that answers with the vector's upstream
//! bytes. What the upstream receives and what the client gets must match the vector, and every
//! answer must parse as OpenAI's objects.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use lightport::vectors::{cases, diff, endpoint_of, engine_for_vectors, upstream_stream, CREATED};
use lightport::{builtin_sources, Endpoint, Engine};
use serde_json::Value;

/// `created` is the clock's in the server and 1700000000 in vectors: take the vector's where it
/// has that value.
fn normalise_created(actual: &mut Value, expected: &Value) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            if e.get("created").and_then(Value::as_u64) == Some(CREATED) && a.contains_key("created") {
                a.insert("created".into(), Value::from(CREATED));
            }
            for (k, v) in a.iter_mut() {
                if let Some(ev) = e.get(k) {
                    normalise_created(v, ev);
                }
            }
        }
        (Value::Array(a), Value::Array(e)) => a.iter_mut().zip(e).for_each(|(x, y)| normalise_created(x, y)),
        _ => {}
    }
}

#[tokio::test]
async fn every_vector_through_the_real_server() {
    let sources = builtin_sources();
    let (engine, errors) = engine_for_vectors(&sources);
    assert!(errors.is_empty(), "{errors:?}");
    let schemas = Schemas::load();
    let mut failures = Vec::new();
    let mut ran = 0;
    for plan in engine.providers() {
        let reply = Arc::new(Mutex::new(Reply::Hang));
        let upstream = mock_switchable(Arc::clone(&reply)).await;
        let url = upstream.url();
        let prefix = plan.id().to_ascii_uppercase().replace(['-', '.'], "_");
        let (registry, errs) = Engine::load(
            &sources,
            &|k: &str| {
                if k == format!("{prefix}_BASE_URL") {
                    Some(url.clone())
                } else if k.ends_with("_API_KEY") {
                    Some("test-key".into())
                } else {
                    None
                }
            },
            None,
        );
        assert!(errs.is_empty());
        let gw = gateway_with(registry, quick_config()).await;
        for case in cases(&fixtures().join(plan.id())) {
            ran += 1;
            let name = format!("{}/{}", plan.id(), case.file_name().unwrap().to_string_lossy());
            let mut request = read_json(&case.join("request.json"));
            let endpoint = endpoint_of(&request);
            let model = request["model"].as_str().unwrap().to_string();
            request["model"] = Value::String(format!("{}/{model}", plan.id()));
            let expected = read_json(&case.join("response.json"));
            let stream = upstream_stream(plan, endpoint, &case).unwrap();
            *reply.lock().unwrap() = match &stream {
                Some(bytes) => Reply::Raw(200, "text/event-stream", bytes.clone()),
                None if case.join("upstream_response.json").exists() => {
                    let r = read_json(&case.join("upstream_response.json"));
                    let headers: Vec<(String, String)> = r["headers"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    Reply::JsonWithHeaders(r["status"].as_u64().unwrap_or(200) as u16, headers, r["body"].clone())
                }
                None => Reply::Hang,
            };
            let before = upstream.requests().len();
            let path = if endpoint == Endpoint::Chat { "/v1/chat/completions" } else { "/v1/embeddings" };
            let resp = client().post(gw.url(path)).header("x-request-id", "test").json(&request).send().await.unwrap();
            let status = resp.status().as_u16();
            let dropped = resp.headers().get("x-lightport-dropped-params").map(|v| v.to_str().unwrap().to_string());
            let is_stream = resp.headers().get("content-type").is_some_and(|c| c == "text/event-stream");
            let mut check = |what: &str, problem: Option<String>| {
                if let Some(p) = problem {
                    failures.push(format!("{name}: {what}: {p}"));
                }
            };
            // A stream that fails before its first content (an error event after at most the role
            // chunk) is answered as an HTTP error by the server, so that it can be retried or
            // fall back like one: its body is the vector's error event.
            let chunks = expected.get("chunks").and_then(Value::as_array);
            let early_error = chunks.and_then(|c| {
                let error = c.last().filter(|e| e.get("error").is_some())?;
                let content = c.iter().any(|ch| {
                    ch["choices"].as_array().into_iter().flatten().any(|choice| {
                        choice["finish_reason"].is_string()
                            || choice["delta"]
                                .as_object()
                                .is_some_and(|d| d.iter().any(|(k, v)| k != "role" && !v.is_null() && v != ""))
                    })
                });
                (!content).then_some(error.clone())
            });
            if let Some(error) = early_error {
                check("status", (status < 400).then(|| format!("got {status} for an error before any content")));
                let got: Value = resp.json().await.unwrap();
                schemas.error(&got);
                check("early stream error", diff(&error, &got));
                continue;
            }
            check(
                "status",
                (u64::from(status) != expected["status"].as_u64().unwrap_or(200)).then(|| format!("got {status}")),
            );
            if let Some(want) = expected.pointer("/headers/x-lightport-dropped-params").and_then(Value::as_str) {
                check("dropped params header", (dropped.as_deref() != Some(want)).then(|| format!("got {dropped:?}")));
            }
            if let Some(chunks) = expected.get("chunks") {
                check("content type", (!is_stream).then(|| "not an event stream".to_string()));
                let mut got = Value::Array(sse_body(resp).await);
                normalise_created(&mut got, chunks);
                schemas.stream(got.as_array().unwrap());
                check("chunks", diff(chunks, &got));
            } else {
                let mut got: Value = resp.json().await.unwrap();
                normalise_created(&mut got, &expected["body"]);
                if endpoint == Endpoint::Chat {
                    if status == 200 {
                        schemas.completion(&got);
                    } else {
                        schemas.error(&got);
                    }
                }
                check("body", diff(&expected["body"], &got));
            }
            let seen = upstream.requests();
            let new: Vec<_> = seen[before..].to_vec();
            if !case.join("upstream_request.json").exists() {
                check("upstream", (!new.is_empty()).then(|| "a refused request reached the upstream".into()));
                continue;
            }
            let want = read_json(&case.join("upstream_request.json"));
            let Some(got) = new.first() else {
                check("upstream", Some("no upstream request".into()));
                continue;
            };
            let (got_path, got_query) = got.path_and_query.split_once('?').unwrap_or((&got.path_and_query, ""));
            check("upstream path", (want["path"].as_str() != Some(got_path)).then(|| format!("got {got_path}")));
            if let Some(Value::Object(q)) = want.get("query") {
                for (k, v) in q {
                    let found = got_query.split('&').filter_map(|kv| kv.split_once('=')).any(|(gk, gv)| {
                        gk == k
                            && percent_encoding::percent_decode_str(gv).decode_utf8_lossy() == v.as_str().unwrap_or("")
                    });
                    check("upstream query", (!found).then(|| format!("missing {k}={v} in {got_query}")));
                }
            }
            if let Some(Value::Object(h)) = want.get("headers") {
                for (k, v) in h {
                    let g = got.headers.get(k.as_str());
                    check("upstream header", (g.map(String::as_str) != v.as_str()).then(|| format!("{k}: got {g:?}")));
                }
            }
            check("upstream body", diff(&want["body"], &got.body));
        }
    }
    assert!(failures.is_empty(), "{} problem(s) in {ran} cases:\n{}", failures.len(), failures.join("\n"));
    assert!(ran >= 200, "ran only {ran} cases");
}
