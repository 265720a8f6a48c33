//! Hot reload: a changed mapping is picked up while serving; a broken one is reported and the
//! last good plan of that file keeps serving.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use lightport::reload::{watch, Sources};
use lightport::Engine;

use serde_json::Value;

const GOOD: &str = "name: Reloadable\nbase_url: https://r.test\nmodels: { list: [one] }\nchat:\n  path: /c\n  request: $\n  response: $\n";

async fn model_ids(gw: &Gateway) -> Vec<String> {
    let v: Value = client().get(gw.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

/// Wait (bounded) until the model list satisfies `cond`: a readiness condition, not a sleep.
async fn until(gw: &Gateway, cond: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ids = model_ids(gw).await;
        if cond(&ids) || Instant::now() > deadline {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn broken_mapping_keeps_last_good_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("reloadable.yaml"), GOOD).unwrap();
    let (reg, errors) = Engine::from_dir(Some(dir.path()), None).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let gw = gateway_with(reg, quick_config()).await;
    let sources = Sources { mappings: Some(dir.path().to_path_buf()), ..Sources::default() };
    let _watcher = watch(sources, Arc::clone(&gw.engine), Arc::clone(&gw.router), Arc::clone(&gw.reloads)).unwrap();
    assert!(model_ids(&gw).await.contains(&"reloadable/one".to_string()));

    // A valid change is picked up.
    std::fs::write(dir.path().join("reloadable.yaml"), GOOD.replace("[one]", "[one, two]")).unwrap();
    let ids = until(&gw, |ids| ids.iter().any(|i| i == "reloadable/two")).await;
    assert!(ids.contains(&"reloadable/two".to_string()), "{ids:?}");

    // Break it, and add a second, valid file in the same burst: the second appears, the first
    // keeps its last good plan.
    std::fs::write(dir.path().join("reloadable.yaml"), "name: Reloadable\nchat: { path: 3 }\n").unwrap();
    std::fs::write(dir.path().join("another.yaml"), GOOD.replace("Reloadable", "Another").replace("[one]", "[x]"))
        .unwrap();
    let ids = until(&gw, |ids| ids.iter().any(|i| i == "another/x")).await;
    assert!(ids.contains(&"another/x".to_string()), "{ids:?}");
    assert!(ids.contains(&"reloadable/two".to_string()), "the broken file's last good plan still serves: {ids:?}");
}

#[tokio::test]
async fn a_config_change_is_picked_up_and_a_broken_one_keeps_the_last_good_config() {
    let (one, two) = (mock(Reply::Json(200, answer("one"))).await, mock(Reply::Json(200, answer("two"))).await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightport.yaml");
    let config = |url: &str| {
        format!(
            "targets:\n  t: {{ provider: openai, base_url: \"{url}/v1\" }}\nroutes:\n  - name: r\n    targets: [t]\n"
        )
    };
    std::fs::write(&path, config(&one.url())).unwrap();
    std::env::set_var("OPENAI_API_KEY", "sk-test-reload");
    let sources = Sources { config: Some(path.clone()), ..Sources::default() };
    let (engine, problems) = sources.engine(None);
    assert!(problems.is_empty());
    let router = sources.router(&engine).unwrap();
    let gw = gateway_routed(engine, router, quick_config()).await;
    let _watcher = watch(sources, Arc::clone(&gw.engine), Arc::clone(&gw.router), Arc::clone(&gw.reloads)).unwrap();
    let who = |gw: &Gateway| {
        let url = gw.url("/v1/chat/completions");
        async move {
            let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            let v: Value = client().post(url).json(&body).send().await.unwrap().json().await.unwrap();
            v["choices"][0]["message"]["content"].as_str().unwrap_or("").to_string()
        }
    };
    assert_eq!(who(&gw).await, "one");

    // Written the way editors and ConfigMaps do it: a new file renamed over the old one.
    let tmp = dir.path().join(".lightport.yaml.tmp");
    std::fs::write(&tmp, config(&two.url())).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while who(&gw).await != "two" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(who(&gw).await, "two", "the config change was not picked up");

    // A broken config keeps the last good one, and /ready says the reload failed.
    let good: Value = client().get(gw.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(good["last_reload"]["ok"], true, "{good}");
    std::fs::write(&path, "routes:\n  - name: r\n    targets: [nowhere]\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let r = client().get(gw.url("/ready")).send().await.unwrap();
        assert_eq!(r.status(), 200, "a failed reload keeps serving, so the gateway stays ready");
        let v: Value = r.json().await.unwrap();
        if v["last_reload"]["ok"] == false || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["last_reload"]["ok"], false, "the failed reload was not reported: {ready}");
    assert_eq!(ready["last_reload"]["problems"], 1, "{ready}");
    assert_eq!(who(&gw).await, "two");
}

fn answer(who: &str) -> Value {
    serde_json::json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": who}, "finish_reason": "stop"}]
    })
}

/// SIGHUP reloads the files as they are, without a change to them, as nginx and Envoy's
/// operators expect; the process keeps serving.
#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lightport.yaml");
    std::fs::write(&config, "routes: []\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lightport"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config", config.to_str().unwrap()])
        .env("LIGHTPORT_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start lightport");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next_line = async || tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
    // Serving once the log says so.
    loop {
        let line = next_line().await.expect("the gateway to start").unwrap().expect("a log line");
        if line.contains("listening") {
            break;
        }
    }
    let pid = child.id().expect("a running child") as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    loop {
        let line = next_line().await.expect("a reload after SIGHUP").unwrap().expect("a log line");
        if line.contains("mappings and config reloaded") {
            break;
        }
    }
    let health = client().get(format!("http://127.0.0.1:{port}/health")).send().await.unwrap();
    assert!(health.status().is_success());
}

/// A Kubernetes ConfigMap volume: each file is a symlink through `..data`, a symlink to a
/// timestamped directory; an update writes a new directory and renames a new `..data` over the
/// old one, so no file the gateway reads is ever written in place.
#[cfg(unix)]
#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..2026_12_01_a")).unwrap();
    std::fs::write(root.join("..2026_12_01_a/reloadable.yaml"), GOOD).unwrap();
    symlink("..2026_12_01_a", root.join("..data")).unwrap();
    symlink("..data/reloadable.yaml", root.join("reloadable.yaml")).unwrap();
    let (engine, errors) = Engine::from_dir(Some(root), None).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let gw = gateway_with(engine, quick_config()).await;
    let sources = Sources { mappings: Some(root.to_path_buf()), ..Sources::default() };
    let _watcher = watch(sources, Arc::clone(&gw.engine), Arc::clone(&gw.router), Arc::clone(&gw.reloads)).unwrap();
    assert!(model_ids(&gw).await.contains(&"reloadable/one".to_string()));

    // The kubelet's update.
    std::fs::create_dir(root.join("..2026_12_01_b")).unwrap();
    std::fs::write(root.join("..2026_12_01_b/reloadable.yaml"), GOOD.replace("[one]", "[one, two]")).unwrap();
    symlink("..2026_12_01_b", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_12_01_a")).unwrap();
    let ids = until(&gw, |ids| ids.iter().any(|i| i == "reloadable/two")).await;
    assert!(ids.contains(&"reloadable/two".to_string()), "the swap was not seen: {ids:?}");
    let (_, failed) = gw.reloads.counts();
    assert_eq!(failed, 0, "a reload during the swap saw a broken state");
}
