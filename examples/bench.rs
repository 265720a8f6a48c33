//! The benchmark: Lightport against going direct, and against LiteLLM's proxy and Portkey's
//! gateway when they are installed, in one run on this machine, with the same mock upstream.
//! Run it with `examples/bench/run.sh` (it builds, installs the load generator, pins cores).
//!
//! Cores (2 here). Latency (fixed rate, time to first chunk): load generator, mock upstream and
//! gateway all on core 1. At these rates they barely compete for it, and no request pays for a
//! cross-core wake-up (on a VM each costs tens of microseconds, and a gateway adds two of them
//! per request: that is the machine, not the gateway). Throughput (fixed concurrency): the
//! gateway alone on core 0, the mock and oha on core 1.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

const MOCK: &str = "127.0.0.1:19100";

struct Args {
    duration: u64,
    rate: u64,
    connections: u64,
    ttfc_samples: usize,
    open_streams: usize,
    /// Alternating plain/routed rounds for the routing layer's cost.
    routing_rounds: usize,
    /// Only the routing layer's paired rounds.
    routing_only: bool,
    peers: bool,
}

fn args() -> Args {
    let mut a = Args {
        duration: 10,
        rate: 1000,
        connections: 64,
        ttfc_samples: 300,
        open_streams: 2000,
        routing_rounds: 7,
        routing_only: false,
        peers: true,
    };
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = argv.iter().position(|x| x == "--no-peers") {
        argv.remove(i);
        a.peers = false;
    }
    if let Some(i) = argv.iter().position(|x| x == "--routing-only") {
        argv.remove(i);
        a.routing_only = true;
    }
    for pair in argv.chunks(2) {
        let v = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), v) {
            ("--duration", Some(v)) => a.duration = v,
            ("--rate", Some(v)) => a.rate = v,
            ("--connections", Some(v)) => a.connections = v,
            ("--ttfc-samples", Some(v)) => a.ttfc_samples = v as usize,
            ("--open-streams", Some(v)) => a.open_streams = v as usize,
            ("--routing-rounds", Some(v)) => a.routing_rounds = v as usize,
            _ => {
                eprintln!("usage: bench [--duration S] [--rate RPS] [--connections N] [--ttfc-samples N] [--open-streams N] [--routing-rounds N] [--routing-only] [--no-peers]");
                std::process::exit(2);
            }
        }
    }
    a
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(
    name: &'static str,
    core: &str,
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    dir: Option<&Path>,
) -> Proc {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(core).arg(program).args(args).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    Proc(cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display())))
}

/// Move a process, its threads and its child processes to `core`.
fn pin(pid: u32, core: &str) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", core, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            pin(c, core);
        }
    }
}

fn rss_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// The RSS of a process and its children (LiteLLM and Portkey run helper processes).
fn tree_rss_kb(pid: u32, field: &str) -> u64 {
    let mut total = rss_kb(pid, field).unwrap_or(0);
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            total += tree_rss_kb(c, field);
        }
    }
    total
}

async fn wait_ready(client: &reqwest::Client, url: &str, what: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{what} did not become ready at {url} within {} s", limit.as_secs());
    false
}

/// Headers and model name a target needs for a scenario ("openai" or "anthropic").
type Route = fn(&str) -> (Vec<(String, String)>, String);

/// Extra headers and model for a gateway of Portkey's lineage: the provider and the mock as its
/// custom host, in headers named with `prefix`.
fn header_route(prefix: &str, scenario: &str) -> (Vec<(String, String)>, String) {
    let (provider, model) =
        if scenario == "anthropic" { ("anthropic", "claude-sonnet-4-5") } else { ("openai", "gpt-4o-mini") };
    (
        vec![
            (format!("{prefix}-provider"), provider.into()),
            (format!("{prefix}-custom-host"), format!("http://{MOCK}/v1")),
        ],
        model.into(),
    )
}

/// A gateway under test: how to call it for each scenario.
struct Target {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    pid: Option<u32>,
    /// Per scenario (openai, anthropic): extra headers and the model name.
    route: Route,
    /// Whether the body is OpenAI's (every gateway) or the provider's own (direct).
    direct: bool,
}

#[derive(Default, Clone)]
struct Load {
    p50: f64,
    p90: f64,
    p99: f64,
    rps: f64,
    ok: f64,
    /// Requests completed.
    done: f64,
}

/// CPU time (user + system) a process has used, in microseconds (clock ticks of 10 ms).
fn cpu_us(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) are space-separated.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10_000.0)
}

/// Write system calls a process has made (`syscw` of /proc/<pid>/io, all its threads).
fn syscw(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines().find_map(|l| l.strip_prefix("syscw:")).and_then(|v| v.trim().parse().ok())
}

/// The share of oha's HTTP answers whose status is 2xx (0 when there were none).
fn share_2xx(v: &Value) -> f64 {
    let codes = v["statusCodeDistribution"].as_object().into_iter().flatten();
    let (mut ok, mut all) = (0.0, 0.0);
    for (code, n) in codes {
        let n = n.as_f64().unwrap_or(0.0);
        all += n;
        if code.starts_with('2') {
            ok += n;
        }
    }
    if all > 0.0 {
        ok / all
    } else {
        0.0
    }
}

fn oha(core: &str, url: &str, body: &Value, headers: &[(String, String)], args: &[String]) -> Option<Load> {
    let body_file = std::env::temp_dir().join(format!("lightport-bench-{}.json", std::process::id()));
    std::fs::write(&body_file, body.to_string()).ok()?;
    let oha = which("oha")?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", core]).arg(oha).args([
        "--no-tui",
        "--output-format",
        "json",
        "-m",
        "POST",
        "-T",
        "application/json",
    ]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg("-D").arg(&body_file).args(args).arg(url);
    let out = cmd.output().ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let pct = |k: &str| v["latencyPercentiles"][k].as_f64().unwrap_or(f64::NAN) * 1e6;
    Some(Load {
        p50: pct("p50"),
        p90: pct("p90"),
        p99: pct("p99"),
        rps: v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        // Answered with a 2xx: oha's success rate counts any HTTP answer as a success.
        ok: v["summary"]["successRate"].as_f64().unwrap_or(0.0) * 100.0 * share_2xx(&v),
        done: v["summary"]["total"].as_f64().unwrap_or(0.0) * v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
    })
}

fn which(name: &str) -> Option<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .chain([Path::new(&home).join(".cargo/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn openai_body(model: &str, stream: bool, hold: bool) -> Value {
    let text = if hold { "hold" } else { "Hello, how are you?" };
    let mut b = json!({"model": model, "messages": [{"role": "system", "content": "You are brief."}, {"role": "user", "content": text}], "max_tokens": 100});
    if stream {
        b["stream"] = json!(true);
    }
    b
}

fn anthropic_body(stream: bool) -> Value {
    let mut b = json!({"model": "claude-sonnet-4-5", "system": "You are brief.", "max_tokens": 100,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, how are you?"}]}]});
    if stream {
        b["stream"] = json!(true);
    }
    b
}

/// (url, headers, body) of one scenario for one target.
fn request(t: &Target, scenario: &str, stream: bool) -> (String, Vec<(String, String)>, Value) {
    let (extra, model) = (t.route)(scenario);
    let mut headers = t.headers.clone();
    headers.extend(extra);
    if t.direct {
        return match scenario {
            "anthropic" => (format!("{}/v1/messages", t.url), headers, anthropic_body(stream)),
            _ => (format!("{}/v1/chat/completions", t.url), headers, openai_body(&model, stream, false)),
        };
    }
    (format!("{}/v1/chat/completions", t.url), headers, openai_body(&model, stream, false))
}

/// Time to the first streamed content chunk, over sequential requests (microseconds, sorted).
async fn ttfc(client: &reqwest::Client, url: &str, headers: &[(String, String)], body: &Value, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = client.post(url).json(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let start = Instant::now();
        let Ok(resp) = req.send().await else { continue };
        let mut s = resp.bytes_stream();
        let mut seen = Vec::new();
        let mut first = None;
        while let Some(Ok(chunk)) = s.next().await {
            seen.extend_from_slice(&chunk);
            // The first chunk that carries generated text (not the role/start events).
            if first.is_none() && (contains(&seen, b"\"content\":\"Hello\"") || contains(&seen, b"\"text\":\"Hello\""))
            {
                first = Some(start.elapsed());
            }
        }
        if let Some(f) = first {
            out.push(f.as_secs_f64() * 1e6);
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Open `n` streams through the gateway that the mock holds open, and measure its RSS then.
async fn open_streams_rss(t: &Target, n: usize) -> Option<(usize, u64)> {
    let pid = t.pid?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).no_proxy().build().ok()?;
    let (extra, model) = (t.route)("openai");
    let url = format!("{}/v1/chat/completions", t.url);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(n);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut req = client.post(&url).json(&openai_body(&model, true, true));
        for (k, v) in t.headers.iter().chain(&extra) {
            req = req.header(k, v);
        }
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(resp) = req.send().await else { return };
            let mut s = resp.bytes_stream();
            if s.next().await.is_some() {
                let _ = tx.send(()).await;
                // Keep the stream open until aborted.
                while s.next().await.is_some() {}
            }
        }));
    }
    drop(tx);
    let mut open = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while open < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(())) => open += 1,
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = tree_rss_kb(pid, "VmRSS:");
    for t in tasks {
        t.abort();
    }
    Some((open, rss))
}

/// One cold start, in microseconds: spawn, then ask until an answer comes (1 ms apart).
async fn cold_start(client: &reqwest::Client, bin: &Path, env: &[(&str, String)]) -> Option<f64> {
    let url = "http://127.0.0.1:19210/v1/chat/completions";
    let body = openai_body("openai/gpt-4o-mini", false, false);
    let start = Instant::now();
    let _p = spawn("lightport (cold)", "0", bin, &["serve", "--listen", "127.0.0.1:19210"], env, None);
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(r) = client.post(url).json(&body).send().await {
            if r.status().is_success() {
                return Some(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

fn us(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let release = root.join("target/release");
    let peers = root.join("target/bench-peers");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut report = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    report.push_str(&format!(
        "Machine: {} cores, {cpu}. Latency: oha, mock and gateway on core 1; throughput: gateway alone on core 0, oha and mock on core 1. {} s per run; fixed rate {} req/s; fixed concurrency {} connections.\n\n",
        std::fs::read_to_string("/proc/cpuinfo").map_or(0, |c| c.lines().filter(|l| l.starts_with("processor")).count()),
        a.duration,
        a.rate,
        a.connections
    ));

    let _mock = spawn("mock", "1", &release.join("examples/bench_mock"), &[MOCK], &[], None);
    let mock_url = format!("http://{MOCK}");
    // The mock answers any path; readiness is a POST that succeeds.
    for _ in 0..50 {
        if client.post(format!("{mock_url}/v1/chat/completions")).body("{}").send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut targets: Vec<(Target, Option<Proc>)> = Vec::new();
    targets.push((
        Target {
            name: "direct (no gateway)".into(),
            url: mock_url.clone(),
            headers: vec![("authorization".into(), "Bearer k".into())],
            pid: None,
            route: |_| (vec![], "gpt-4o-mini".into()),
            direct: true,
        },
        None,
    ));

    let env = vec![
        ("OPENAI_BASE_URL", format!("{mock_url}/v1")),
        ("OPENAI_API_KEY", "k".to_string()),
        ("ANTHROPIC_BASE_URL", mock_url.clone()),
        ("ANTHROPIC_API_KEY", "k".to_string()),
        ("LIGHTPORT_LOG", "warn".to_string()),
    ];
    // Cold start first, while nothing else runs (the peers keep working in the background).
    let mut times: Vec<f64> = Vec::new();
    if !a.routing_only {
        for _ in 0..7 {
            if let Some(t) = cold_start(&client, &release.join("lightport"), &env).await {
                times.push(t);
            }
        }
        times.sort_by(f64::total_cmp);
    }
    let lp = spawn("lightport", "0", &release.join("lightport"), &["serve", "--listen", "127.0.0.1:19200"], &env, None);
    if wait_ready(&client, "http://127.0.0.1:19200/health", "lightport", Duration::from_secs(10)).await {
        let pid = lp.0.id();
        // The providers it serves, as its readiness answer counts them.
        let ready: Value = match client.get("http://127.0.0.1:19200/ready").send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        report.push_str(&format!(
            "Lightport idle RSS with all {} built-in providers loaded: {:.1} MB\n\n",
            ready["providers"].as_u64().unwrap_or(0),
            rss_kb(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0
        ));
        targets.push((
            Target {
                name: "Lightport".into(),
                url: "http://127.0.0.1:19200".into(),
                headers: vec![],
                pid: Some(pid),
                route: |s| {
                    (
                        vec![],
                        if s == "anthropic" {
                            "anthropic/claude-sonnet-4-5".into()
                        } else {
                            "openai/gpt-4o-mini".into()
                        },
                    )
                },
                direct: false,
            },
            Some(lp),
        ));
    }

    // The same gateway behind a route: two weighted targets and a fallback, to show what the
    // routing layer costs over the plain path above.
    let routed_cfg = std::env::temp_dir().join("lightport-bench-routes.yaml");
    std::fs::write(
        &routed_cfg,
        format!(
            "targets:\n  a: {{ provider: openai, model: gpt-4o-mini, base_url: \"{mock_url}/v1\" }}\n  b: {{ provider: openai, model: gpt-4o-mini, base_url: \"{mock_url}/v1\" }}\n  ca: {{ provider: anthropic, model: claude-sonnet-4-5, base_url: \"{mock_url}\" }}\n  cb: {{ provider: anthropic, model: claude-sonnet-4-5, base_url: \"{mock_url}\" }}\nroutes:\n  - {{ name: ab, model: routed-openai, split: [{{ target: a, weight: 50 }}, {{ target: b, weight: 50 }}] }}\n  - {{ name: cab, model: routed-anthropic, split: [{{ target: ca, weight: 50 }}, {{ target: cb, weight: 50 }}] }}\n"
        ),
    )
    .unwrap();
    let mut routed_args = vec!["serve", "--listen", "127.0.0.1:19201", "--config"];
    routed_args.push(routed_cfg.to_str().unwrap());
    let lpr = spawn("lightport (routed)", "0", &release.join("lightport"), &routed_args, &env, None);
    if wait_ready(&client, "http://127.0.0.1:19201/health", "lightport (routed)", Duration::from_secs(10)).await {
        let pid = lpr.0.id();
        targets.push((
            Target {
                name: "Lightport, routed (2-arm split + fallback)".into(),
                url: "http://127.0.0.1:19201".into(),
                headers: vec![],
                pid: Some(pid),
                route: |s| (vec![], if s == "anthropic" { "routed-anthropic".into() } else { "routed-openai".into() }),
                direct: false,
            },
            Some(lpr),
        ));
    }

    let litellm = peers.join("venv/bin/litellm");
    if a.peers && litellm.is_file() {
        let cfg = std::env::temp_dir().join("lightport-bench-litellm.yaml");
        let mut f = std::fs::File::create(&cfg).unwrap();
        writeln!(f, "model_list:\n  - model_name: openai/gpt-4o-mini\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{mock_url}/v1', api_key: k}}\n  - model_name: anthropic/claude-sonnet-4-5\n    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: '{mock_url}', api_key: k}}\nlitellm_settings: {{ set_verbose: false, json_logs: false }}").unwrap();
        let p = spawn(
            "litellm",
            "0",
            &litellm,
            &["--config", cfg.to_str().unwrap(), "--port", "19300", "--num_workers", "1"],
            &[("LITELLM_LOG", "ERROR".into()), ("LITELLM_MASTER_KEY", "sk-bench-0123456789".into())],
            None,
        );
        if wait_ready(&client, "http://127.0.0.1:19300/health/liveliness", "litellm", Duration::from_secs(120)).await {
            let pid = p.0.id();
            targets.push((
                Target {
                    name: "LiteLLM proxy".into(),
                    url: "http://127.0.0.1:19300".into(),
                    headers: vec![("authorization".into(), "Bearer sk-bench-0123456789".into())],
                    pid: Some(pid),
                    route: |s| {
                        (
                            vec![],
                            if s == "anthropic" {
                                "anthropic/claude-sonnet-4-5".into()
                            } else {
                                "openai/gpt-4o-mini".into()
                            },
                        )
                    },
                    direct: false,
                },
                Some(p),
            ));
        }
    } else {
        report.push_str("LiteLLM: not installed (examples/bench/run.sh --peers installs it)\n\n");
    }

    // Node for the TypeScript gateways: run.sh installs Node 24 beside them when the system's is
    // older than Lightport-TS needs (its undici 8 does not load on Node 20).
    let node = Some(peers.join("node/node_modules/.bin/node"))
        .filter(|p| p.is_file())
        .or_else(|| which("node"))
        .unwrap_or_else(|| PathBuf::from("node"));
    // Portkey's gateway (npm) and Lightport-TS (github.com/glama-ai/lightport, a Portkey fork,
    // built from source by run.sh): both choose the provider and its host from headers.
    let node_gateways: [(&str, &str, PathBuf, u16, Route, &str); 2] = [
        (
            "Portkey gateway",
            "portkey",
            peers.join("portkey/node_modules/@portkey-ai/gateway/build/start-server.js"),
            19400,
            |s| header_route("x-portkey", s),
            "not installed (examples/bench/run.sh --peers installs it)",
        ),
        (
            "Lightport-TS",
            "lightport-ts",
            peers.join("lightport-ts/build/start-server.mjs"),
            19500,
            |s| header_route("x-lightport", s),
            "not built (examples/bench/run.sh --peers clones and builds it)",
        ),
    ];
    for (name, short, script, port, route, missing) in node_gateways {
        if !(a.peers && script.is_file()) {
            report.push_str(&format!("{name}: {missing}\n\n"));
            continue;
        }
        let p = spawn(short, "0", &node, &[script.to_str().unwrap(), &format!("--port={port}")], &[], None);
        if wait_ready(&client, &format!("http://127.0.0.1:{port}/"), short, Duration::from_secs(60)).await {
            let pid = p.0.id();
            targets.push((
                Target {
                    name: name.into(),
                    url: format!("http://127.0.0.1:{port}"),
                    headers: vec![("authorization".into(), "Bearer k".into()), ("x-api-key".into(), "k".into())],
                    pid: Some(pid),
                    route,
                    direct: false,
                },
                Some(p),
            ));
        }
    }

    // Max req/s of each target and scenario without streaming, for the stream table's ratio.
    let mut non_stream_rps: std::collections::HashMap<(String, &str), f64> = Default::default();
    if !a.routing_only {
        let d = format!("{}s", a.duration);
        let mock_pid = _mock.0.id();
        for (scenario, label) in [("openai", "OpenAI pass-through"), ("anthropic", "Anthropic translation")] {
            report.push_str(&format!("### Non-stream, {label}\n\n| target | p50 | p90 | p99 | p50 added | p99 added | p99 ratio | max req/s ({} conns) | CPU µs / request | errors |\n|---|---|---|---|---|---|---|---|---|---|\n", a.connections));
            let mut base: Option<Load> = None;
            for (t, _) in &targets {
                let (url, headers, body) = request(t, scenario, false);
                // Latency layout: everything on core 1.
                pin(mock_pid, "1");
                if let Some(pid) = t.pid {
                    pin(pid, "1");
                }
                let _ = oha("1", &url, &body, &headers, &["-z".into(), "2s".into(), "-c".into(), "8".into()]);
                let fixed = oha(
                    "1",
                    &url,
                    &body,
                    &headers,
                    &[
                        "-z".into(),
                        d.clone(),
                        "-q".into(),
                        a.rate.to_string(),
                        "--latency-correction".into(),
                        "-c".into(),
                        "32".into(),
                    ],
                );
                // Throughput layout: the gateway alone on core 0.
                if let Some(pid) = t.pid {
                    pin(pid, "0");
                }
                let cpu_before = t.pid.and_then(cpu_us);
                let max =
                    oha("1", &url, &body, &headers, &["-z".into(), d.clone(), "-c".into(), a.connections.to_string()]);
                let cpu_per_request = match (cpu_before, t.pid.and_then(cpu_us), &max) {
                    (Some(b), Some(e), Some(m)) if m.done > 0.0 => format!("{:.0}", (e - b) / m.done),
                    _ => "-".into(),
                };
                let (Some(f), Some(m)) = (fixed, max) else {
                    report.push_str(&format!("| {} | failed to run | | | | | | | | |\n", t.name));
                    continue;
                };
                non_stream_rps.insert((t.name.clone(), scenario), m.rps);
                let (add50, add99, ratio) = match &base {
                    Some(b) => (us(f.p50 - b.p50), us(f.p99 - b.p99), format!("{:.2}x", f.p99 / b.p99)),
                    None => ("-".into(), "-".into(), "1.00x".into()),
                };
                report.push_str(&format!(
                    "| {} | {} | {} | {} | {add50} | {add99} | {ratio} | {:.0} | {cpu_per_request} | {:.2}% |\n",
                    t.name,
                    us(f.p50),
                    us(f.p90),
                    us(f.p99),
                    m.rps,
                    100.0 - f.ok.min(m.ok)
                ));
                if t.direct {
                    base = Some(f);
                }
            }
            report.push('\n');
        }

        // Streams at full speed: the gateway alone on core 0, as for the non-stream maximum. The
        // mock sends each answer's 20 deltas as fast as it can. Writes are the gateway's write
        // system calls (`syscw`), its sockets to the client and to the mock alike.
        report.push_str(&format!("### Streams, max throughput ({} conns, 20-delta answers)\n\n| target | scenario | max streams/s | of its non-stream req/s | CPU µs / stream | write syscalls / stream | errors |\n|---|---|---|---|---|---|---|\n", a.connections));
        for (scenario, label) in [("openai", "OpenAI pass-through"), ("anthropic", "Anthropic translation")] {
            for (t, _) in &targets {
                if let Some(pid) = t.pid {
                    pin(pid, "0");
                }
                let (url, headers, body) = request(t, scenario, true);
                let (cpu0, w0) = (t.pid.and_then(cpu_us), t.pid.and_then(syscw));
                let Some(m) =
                    oha("1", &url, &body, &headers, &["-z".into(), d.clone(), "-c".into(), a.connections.to_string()])
                else {
                    report.push_str(&format!("| {} | {label} | failed to run | | | | |\n", t.name));
                    continue;
                };
                let per = |before: Option<f64>, after: Option<f64>| match (before, after) {
                    (Some(b), Some(e)) if m.done > 0.0 => format!("{:.0}", (e - b) / m.done),
                    _ => "-".into(),
                };
                let cpu = per(cpu0, t.pid.and_then(cpu_us));
                let writes = per(w0.map(|w| w as f64), t.pid.and_then(syscw).map(|w| w as f64));
                let ratio = non_stream_rps
                    .get(&(t.name.clone(), scenario))
                    .filter(|r| **r > 0.0)
                    .map_or("-".into(), |r| format!("{:.0}%", 100.0 * m.rps / r));
                report.push_str(&format!(
                    "| {} | {label} | {:.0} | {ratio} | {cpu} | {writes} | {:.2}% |\n",
                    t.name,
                    m.rps,
                    100.0 - m.ok
                ));
            }
        }
        report.push('\n');

        report.push_str(&format!("### Streams: time to first content chunk ({} sequential requests)\n\n| target | scenario | p50 | p99 | p50 added | p99 added |\n|---|---|---|---|---|---|\n", a.ttfc_samples));
        // Latency layout again; the client is this process, on core 1 with the mock and gateway.
        for (scenario, label) in [("openai", "OpenAI pass-through"), ("anthropic", "Anthropic translation")] {
            let mut base: Option<(f64, f64)> = None;
            for (t, _) in &targets {
                if let Some(pid) = t.pid {
                    pin(pid, "1");
                }
                let (url, headers, body) = request(t, scenario, true);
                let _ = ttfc(&client, &url, &headers, &body, 20).await;
                let s = ttfc(&client, &url, &headers, &body, a.ttfc_samples).await;
                let (p50, p99) = (pct(&s, 0.5), pct(&s, 0.99));
                let (a50, a99) = match base {
                    Some((b50, b99)) => (us(p50 - b50), us(p99 - b99)),
                    None => ("-".into(), "-".into()),
                };
                report.push_str(&format!("| {} | {label} | {} | {} | {a50} | {a99} |\n", t.name, us(p50), us(p99)));
                if t.direct {
                    base = Some((p50, p99));
                }
            }
        }
        report.push('\n');
    }
    // The routing layer's cost: one run of a gateway against another is at the mercy of this
    // VM's neighbours (tens of µs between two runs of the same binary), so plain and routed are
    // measured in alternating short rounds and compared round by round.
    let plain = targets.iter().find(|(t, _)| t.name == "Lightport").map(|(t, _)| t);
    let routed = targets.iter().find(|(t, _)| t.name.starts_with("Lightport, routed")).map(|(t, _)| t);
    if let (Some(plain), Some(routed), true) = (plain, routed, a.routing_rounds > 0) {
        report.push_str(&format!(
            "### Routing layer cost: {} alternating rounds of 3 s at {} req/s, plain then routed (routed first in odd rounds)\n\n| scenario | plain p50 | routed p50 | p50 added by routing (median of the rounds' differences) | CPU µs / request plain | routed |\n|---|---|---|---|---|---|\n",
            a.routing_rounds, a.rate
        ));
        for (scenario, label) in [("openai", "OpenAI pass-through"), ("anthropic", "Anthropic translation")] {
            let mut rows: Vec<[f64; 4]> = Vec::new();
            for round in 0..a.routing_rounds {
                let order = if round % 2 == 0 { [plain, routed] } else { [routed, plain] };
                let mut got = [f64::NAN; 4];
                for t in order {
                    let pid = t.pid.expect("a gateway process");
                    pin(pid, "1");
                    let (url, headers, body) = request(t, scenario, false);
                    let before = cpu_us(pid);
                    let load = oha(
                        "1",
                        &url,
                        &body,
                        &headers,
                        &[
                            "-z".into(),
                            "3s".into(),
                            "-q".into(),
                            a.rate.to_string(),
                            "--latency-correction".into(),
                            "-c".into(),
                            "32".into(),
                        ],
                    );
                    let (Some(l), Some(b), Some(e)) = (load, before, cpu_us(pid)) else { continue };
                    let i = if std::ptr::eq(t, plain) { 0 } else { 1 };
                    got[i] = l.p50;
                    got[i + 2] = if l.done > 0.0 { (e - b) / l.done } else { f64::NAN };
                }
                rows.push(got);
            }
            let median = |f: &dyn Fn(&[f64; 4]) -> f64| {
                let mut v: Vec<f64> = rows.iter().map(f).filter(|x| !x.is_nan()).collect();
                v.sort_by(f64::total_cmp);
                pct(&v, 0.5)
            };
            report.push_str(&format!(
                "| {label} | {} | {} | {} | {:.0} | {:.0} |\n",
                us(median(&|r| r[0])),
                us(median(&|r| r[1])),
                us(median(&|r| r[1] - r[0])),
                median(&|r| r[2]),
                median(&|r| r[3]),
            ));
        }
        report.push('\n');
    }

    if !a.routing_only {
        report.push_str(&format!(
        "### Memory\n\n| target | idle RSS | RSS with {} open streams | peak RSS (whole run) |\n|---|---|---|---|\n",
        a.open_streams
    ));
        for (t, _) in &targets {
            let Some(pid) = t.pid else { continue };
            pin(pid, "0");
            let idle = tree_rss_kb(pid, "VmRSS:");
            let open = open_streams_rss(t, a.open_streams).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let peak = tree_rss_kb(pid, "VmHWM:");
            let open = match open {
                Some((n, kb)) if n == a.open_streams => format!("{:.1} MB", kb as f64 / 1024.0),
                Some((n, kb)) => format!("{:.1} MB ({n} opened)", kb as f64 / 1024.0),
                None => "-".into(),
            };
            report.push_str(&format!(
                "| {} | {:.1} MB | {open} | {:.1} MB |\n",
                t.name,
                idle as f64 / 1024.0,
                peak as f64 / 1024.0
            ));
        }
    }

    report.push('\n');
    // Cold start: what a serverless platform pays on every scale-up. From the process's spawn
    // to the first chat request answered through it (every built-in mapping compiled first).
    if !a.routing_only {
        report.push_str(&format!(
            "### Cold start\n\nProcess spawn to the first chat completion answered (all built-in mappings compiled), {} runs: median {}, max {}.\n\n",
            times.len(),
            us(pct(&times, 0.5)),
            us(times.last().copied().unwrap_or(f64::NAN)),
        ));
    }
    println!("{report}");
    let out = root.join("target/bench-report.md");
    let _ = std::fs::write(&out, &report);
    eprintln!("(also written to {})", out.display());
}
