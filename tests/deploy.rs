//! The deployment files against the real binary: the Dockerfile's runtime stage runs as written
//! (ENTRYPOINT, CMD, ENV, HEALTHCHECK), `lightport health` tells a live gateway from a dead one,
//! and the Kubernetes and Compose examples set only flags and variables that the gateway reads,
//! consistently with the image and with each other.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;

/// Where the Dockerfile installs the binary.
const BIN_IN_IMAGE: &str = "/usr/local/bin/lightport";

/// Read by the gateway but not (yet) through `serve`'s clap flags: the tracing filter, and the
/// settings being added on other branches (config file, JSON logs, metrics address, SIGTERM
/// drain, shared limits).
const OTHER_ENV: &[&str] = &[
    "LIGHTPORT_LOG",
    "LIGHTPORT_CONFIG",
    "LIGHTPORT_LOG_FORMAT",
    "LIGHTPORT_METRICS_LISTEN",
    "LIGHTPORT_DRAIN_TIMEOUT",
    "LIGHTPORT_REDIS_URL",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn lightport(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lightport")).args(args).output().unwrap()
}

// ---- the Dockerfile ----------------------------------------------------------------------

/// What the image's last stage says about how the binary runs.
#[derive(Debug, Default)]
struct Runtime {
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    user: String,
    expose: Vec<u16>,
}

/// The Dockerfile's instructions: comments dropped, continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                let (kw, rest) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
                out.push((kw.to_ascii_uppercase(), rest.trim().to_string()));
                cur.clear();
            }
        }
    }
    out
}

/// Shell-like words: whitespace-separated, with double quotes and backslash escapes.
fn words(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            '\\' => cur.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn exec_form(kw: &str, rest: &str) -> Vec<String> {
    serde_json::from_str(rest)
        .unwrap_or_else(|e| panic!("{kw} {rest}: keep it in exec (JSON array) form so it runs without a shell: {e}"))
}

fn runtime_stage() -> Runtime {
    let all = instructions(&read("Dockerfile"));
    let from = all.iter().rposition(|(kw, _)| kw == "FROM").expect("a FROM");
    let mut rt = Runtime::default();
    for (kw, rest) in &all[from + 1..] {
        match kw.as_str() {
            "ENV" => {
                let w = words(rest);
                if w.first().is_some_and(|w| !w.contains('=')) {
                    // The legacy `ENV KEY value` form.
                    rt.env.push((w[0].clone(), w[1..].join(" ")));
                } else {
                    for kv in w {
                        let (k, v) = kv.split_once('=').unwrap();
                        rt.env.push((k.to_string(), v.to_string()));
                    }
                }
            }
            "ENTRYPOINT" => rt.entrypoint = exec_form(kw, rest),
            "CMD" => rt.cmd = exec_form(kw, rest),
            "HEALTHCHECK" => {
                let (_, cmd) = rest.split_once("CMD ").expect("HEALTHCHECK ... CMD [...]");
                rt.healthcheck = exec_form(kw, cmd.trim());
            }
            "USER" => rt.user = rest.clone(),
            "EXPOSE" => {
                rt.expose.extend(rest.split_whitespace().map(|p| p.trim_end_matches("/tcp").parse::<u16>().unwrap()))
            }
            _ => {}
        }
    }
    rt
}

impl Runtime {
    fn env(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A container command (`["/usr/local/bin/lightport", args...]`), run from the test's build.
    fn command(&self, argv: &[String], listen: SocketAddr, cwd: &Path) -> Command {
        assert_eq!(argv.first().map(String::as_str), Some(BIN_IN_IMAGE), "{argv:?}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lightport"));
        cmd.args(&argv[1..])
            .env_clear()
            .envs(self.env.iter().filter(|(k, _)| k != "LIGHTPORT_LISTEN").map(|(k, v)| (k, v)))
            .env("LIGHTPORT_LISTEN", listen.to_string())
            // The image's working directory holds nothing: the built-in mappings must be inside
            // the binary, not read from ./mappings.
            .current_dir(cwd);
        cmd
    }
}

/// A loopback port that nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The status and body of a plain HTTP/1.1 GET, or None when nothing (complete) answered.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_string()))
}

/// The gateway process, killed when the test ends however it ends.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the gateway and wait until it answers: a bounded number of attempts, each failing fast
/// while the port is still closed. The pass condition is the 200, never the time waited.
fn start(mut cmd: Command, listen: SocketAddr, dir: &Path) -> Running {
    let log = dir.join("lightport.log");
    let child =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let mut gw = Running { child, log };
    for _ in 0..400 {
        if let Some(status) = gw.child.try_wait().unwrap() {
            panic!("{cmd:?} exited with {status}:\n{}", gw.log());
        }
        if http_get(listen, "/health").is_some_and(|(status, _)| status == 200) {
            return gw;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let log = gw.log();
    drop(gw);
    panic!("no 200 from GET /health on {listen} after 400 attempts:\n{log}");
}

fn start_image_command(rt: &Runtime, listen: SocketAddr, dir: &Path) -> Running {
    let argv: Vec<String> = rt.entrypoint.iter().chain(&rt.cmd).cloned().collect();
    start(rt.command(&argv, listen, dir), listen, dir)
}

#[test]
fn the_image_runtime_stage_serves_and_passes_its_own_healthcheck() {
    let rt = runtime_stage();
    assert_eq!(rt.entrypoint, [BIN_IN_IMAGE], "ENTRYPOINT is the binary, CMD its arguments");
    assert_eq!(rt.cmd.first().map(String::as_str), Some("serve"), "{:?}", rt.cmd);

    // The image listens on every interface, on the port it EXPOSEs.
    let image_listen: SocketAddr = rt.env("LIGHTPORT_LISTEN").expect("ENV LIGHTPORT_LISTEN").parse().unwrap();
    assert!(image_listen.ip().is_unspecified(), "{image_listen}: unreachable from outside the container");
    assert_eq!(rt.expose, [image_listen.port()]);
    // Numeric, so that Kubernetes' runAsNonRoot can check it.
    let uid: u32 = rt.user.split(':').next().unwrap().parse().expect("a numeric USER");
    assert_ne!(uid, 0, "the image runs as root");

    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = start_image_command(&rt, listen, dir.path());

    // The HEALTHCHECK as Docker runs it: same environment, no URL (it follows LIGHTPORT_LISTEN).
    let out = rt.command(&rt.healthcheck, listen, dir.path()).output().unwrap();
    assert!(out.status.success(), "HEALTHCHECK {:?}: {out:?}\n{}", rt.healthcheck, gw.log());

    let url = format!("http://{listen}/health");
    let out = lightport(&["health", "--url", &url]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = lightport(&["health", "--url", &format!("http://localhost:{}/health", listen.port())]);
    assert_eq!(out.status.code(), Some(0), "a host name resolves: {out:?}");

    // A live gateway that answers something other than 2xx is not healthy.
    let out = lightport(&["health", "--url", &format!("http://{listen}/no-such-route")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"), "{out:?}");

    // The built-in providers are inside the binary (the working directory is empty).
    let (status, models) = http_get(listen, "/v1/models").unwrap();
    assert_eq!(status, 200, "{models}");
    for id in ["anthropic", "gemini", "openai"] {
        assert!(models.contains(&format!("\"{id}/")), "no {id} model in {models}\n{}", gw.log());
    }
}

#[test]
fn health_fails_on_a_closed_port_and_on_a_silent_server() {
    let closed = free_port();
    let out = lightport(&["health", "--url", &format!("http://127.0.0.1:{closed}/health")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!out.stderr.is_empty(), "it says why");

    // The default URL follows LIGHTPORT_LISTEN, wildcard address read as loopback.
    let out = Command::new(env!("CARGO_BIN_EXE_lightport"))
        .arg("health")
        .env("LIGHTPORT_LISTEN", format!("0.0.0.0:{closed}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("http://127.0.0.1:{closed}/health")), "{out:?}");

    // Accepts the connection and never answers: the 2 s bound ends it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", silent.local_addr().unwrap());
    let started = Instant::now();
    let out = lightport(&["health", "--url", &url]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    let out = lightport(&["health", "--url", "https://127.0.0.1:1/health"]);
    assert_eq!(out.status.code(), Some(1), "only plain http: {out:?}");
}

/// Docker's `.dockerignore` rules, in order: (exception, pattern).
fn dockerignore() -> Vec<(bool, String)> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix('!') {
            Some(p) => (true, p.trim_matches('/').to_string()),
            None => (false, l.trim_matches('/').to_string()),
        })
        .collect()
}

/// One path component against one pattern component: `*` any run of characters, `?` one.
fn glob(pat: &[u8], name: &[u8]) -> bool {
    match (pat.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => glob(rest, name) || (!name.is_empty() && glob(pat, &name[1..])),
        (Some((b'?', rest)), Some((_, tail))) => glob(rest, tail),
        (Some((p, rest)), Some((n, tail))) => p == n && glob(rest, tail),
        _ => false,
    }
}

/// Whether Docker leaves `path` out of the build context: the last rule matching the path, or
/// one of its parent directories, decides (as moby's patternmatcher does).
fn left_out_of_context(rules: &[(bool, String)], path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let mut excluded = false;
    for (exception, pattern) in rules {
        let pat: Vec<&str> = pattern.split('/').collect();
        let matches = pat.len() <= parts.len() && pat.iter().zip(&parts).all(|(p, n)| glob(p.as_bytes(), n.as_bytes()));
        if matches {
            excluded = !exception;
        }
    }
    excluded
}

#[test]
fn the_docker_build_context_holds_every_file_cargo_needs() {
    let rules = dockerignore();
    // Every target of the package (lib, bin, build script, benches, examples): a file declared
    // in Cargo.toml but missing from the context fails the manifest, so the whole build.
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = read("Cargo.toml");
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    for target in meta["packages"][0]["targets"].as_array().unwrap() {
        let kind = target["kind"][0].as_str().unwrap();
        // Test targets are found by directory scan unless declared; a missing one is skipped.
        if kind == "test" && !manifest.contains("[[test]]") {
            continue;
        }
        let path = Path::new(target["src_path"].as_str().unwrap());
        needed.push(path.strip_prefix(repo()).unwrap().to_string_lossy().replace('\\', "/"));
    }
    // What build.rs compiles into the binary.
    for entry in std::fs::read_dir(repo().join("mappings")).unwrap() {
        needed.push(format!("mappings/{}", entry.unwrap().file_name().to_string_lossy()));
    }
    let missing: Vec<&String> = needed.iter().filter(|p| left_out_of_context(&rules, p)).collect();
    assert!(missing.is_empty(), ".dockerignore leaves out {missing:?}");
    assert!(needed.iter().any(|p| p == "build.rs") && needed.iter().any(|p| p == "src/main.rs"), "{needed:?}");
    // And the bulk stays out.
    for junk in ["target/debug/lightport", ".git/HEAD", "tests/fixtures", "docs/deploy.md"] {
        assert!(left_out_of_context(&rules, junk), "{junk} is sent to the Docker daemon");
    }
}

// ---- flags and variables -------------------------------------------------------------------

/// `serve`'s flags and the variables it reads, from its own `--help`.
fn serve_flags_and_env() -> (BTreeSet<String>, BTreeSet<String>) {
    let help = String::from_utf8(lightport(&["serve", "--help"]).stdout).unwrap();
    let flags =
        help.split_whitespace().filter(|w| w.starts_with("--")).map(|w| w.trim_end_matches(',').to_string()).collect();
    let env = help.split("[env: ").skip(1).map(|s| s.split('=').next().unwrap().to_string()).collect();
    (flags, env)
}

/// `<ID>_API_KEY` and `<ID>_BASE_URL` for these provider ids.
fn provider_vars<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    ids.into_iter()
        .map(|id| id.to_ascii_uppercase().replace('-', "_"))
        .flat_map(|id| [format!("{id}_API_KEY"), format!("{id}_BASE_URL")])
        .collect()
}

struct Known {
    flags: BTreeSet<String>,
    env: BTreeSet<String>,
}

impl Known {
    /// Everything the gateway reads, with providers from the built-ins and `extra_ids`.
    fn new(extra_ids: &[String]) -> Known {
        let (flags, mut env) = serve_flags_and_env();
        assert!(flags.contains("--listen") && env.contains("LIGHTPORT_LISTEN"), "{flags:?} {env:?}");
        env.extend(OTHER_ENV.iter().map(|s| s.to_string()));
        // The built-in providers: build.rs compiles every mappings/<id>.yaml into the binary.
        let builtin: Vec<String> = std::fs::read_dir(repo().join("mappings"))
            .unwrap()
            .filter_map(|e| e.ok()?.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        assert!(builtin.iter().any(|id| id == "anthropic"), "{builtin:?}");
        env.extend(provider_vars(builtin.iter().chain(extra_ids).map(String::as_str)));
        Known { flags, env }
    }

    fn check_args(&self, args: &[String], what: &str) {
        assert_eq!(args.first().map(String::as_str), Some("serve"), "{what}: {args:?}");
        for a in &args[1..] {
            if let Some(flag) = a.strip_prefix("--") {
                let flag = format!("--{}", flag.split('=').next().unwrap());
                assert!(self.flags.contains(&flag), "{what}: `serve` takes no {flag} (it takes {:?})", self.flags);
            }
        }
    }

    fn check_env(&self, name: &str, what: &str) {
        assert!(self.env.contains(name), "{what}: the gateway reads no variable {name}");
    }
}

/// Every document of every manifest in examples/kubernetes/, by file name.
fn manifests() -> BTreeMap<String, Vec<Value>> {
    let dir = repo().join("examples").join("kubernetes");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
                .filter(|v: &Value| !v.is_null())
                .collect();
            out.insert(path.file_name().unwrap().to_string_lossy().into_owned(), docs);
        }
    }
    out
}

fn find<'a>(all: &'a BTreeMap<String, Vec<Value>>, kind: &str) -> Vec<&'a Value> {
    all.values().flatten().filter(|d| d["kind"].as_str() == Some(kind)).collect()
}

fn named<'a>(all: &'a BTreeMap<String, Vec<Value>>, kind: &str, name: &str) -> &'a Value {
    find(all, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

/// The provider ids that the mappings ConfigMap adds (its `<id>.yaml` keys).
fn configmap_provider_ids(all: &BTreeMap<String, Vec<Value>>) -> Vec<String> {
    let data = named(all, "ConfigMap", "lightport-mappings")["data"].as_mapping().unwrap();
    data.keys().map(|k| k.as_str().unwrap().strip_suffix(".yaml").expect("<id>.yaml keys").to_string()).collect()
}

fn container_env(c: &Value) -> BTreeMap<String, String> {
    c["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap_or_default().to_string()))
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{addr}: {e}")).port()
}

#[test]
fn kubernetes_containers_set_only_flags_and_variables_the_gateway_reads() {
    let all = manifests();
    let known = Known::new(&configmap_provider_ids(&all));
    let deployments = find(&all, "Deployment");
    assert!(!deployments.is_empty());
    for d in deployments {
        let spec = &d["spec"]["template"]["spec"];
        for c in spec["containers"].as_sequence().unwrap() {
            let what = format!(
                "Deployment {} container {}",
                d["metadata"]["name"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            );
            let command = strings(&c["command"]);
            assert!(command.is_empty() || command == [BIN_IN_IMAGE], "{what}: command {command:?}");
            known.check_args(&strings(&c["args"]), &what);
            for name in container_env(c).keys() {
                known.check_env(name, &what);
            }
            for source in c["envFrom"].as_sequence().into_iter().flatten() {
                assert!(source["prefix"].is_null(), "{what}: a prefix would rename the keys");
                let secret = named(&all, "Secret", source["secretRef"]["name"].as_str().expect("envFrom a Secret"));
                for data in [&secret["stringData"], &secret["data"]] {
                    for key in data.as_mapping().into_iter().flat_map(|m| m.keys()) {
                        known.check_env(key.as_str().unwrap(), &format!("{what}, from its Secret"));
                    }
                }
            }
        }
    }
}

#[test]
fn kubernetes_deployment_agrees_with_the_image_and_the_other_manifests() {
    let all = manifests();
    let rt = runtime_stage();
    let d = named(&all, "Deployment", "lightport");
    let spec = &d["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    let env = container_env(c);
    let ports: BTreeMap<&str, u64> = c["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["containerPort"].as_u64().unwrap()))
        .collect();

    // The ports it listens on are the ports it declares; the probes hit the right endpoints.
    assert_eq!(ports["http"], u64::from(port_of(&env["LIGHTPORT_LISTEN"])));
    assert_eq!(ports["metrics"], u64::from(port_of(&env["LIGHTPORT_METRICS_LISTEN"])));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"].as_str(), Some("/health"));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"].as_str(), Some("/ready"));
    assert_eq!(c["livenessProbe"]["httpGet"]["port"].as_str(), Some("http"));

    // Shutdown: the preStop wait plus the drain fit in the grace period, with room to exit.
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    let drain: u64 = env["LIGHTPORT_DRAIN_TIMEOUT"].parse().unwrap();
    let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    assert_eq!((grace, drain), (30, 25));
    assert!(pre_stop + drain < grace, "preStop {pre_stop} s + drain {drain} s must end before SIGKILL at {grace} s");
    assert!(c["lifecycle"]["preStop"]["exec"].is_null(), "the distroless image has no shell or sleep to exec");

    // Locked down, as the image's own user.
    let uid = rt.user.split(':').next().unwrap().parse::<u64>().unwrap();
    assert_eq!(spec["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(spec["securityContext"]["runAsUser"].as_u64(), Some(uid));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&c["securityContext"]["capabilities"]["drop"]), ["ALL"]);

    // The files the variables name are mounted there, from ConfigMaps that exist; the mappings
    // directory as a whole (a subPath mount would never see an update, defeating hot reload).
    let volume_of = |mount_path: &str| {
        let m = c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(mount_path))
            .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
        let v = spec["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == m["name"]).unwrap();
        let cm = named(&all, "ConfigMap", v["configMap"]["name"].as_str().unwrap());
        (m.clone(), cm.clone())
    };
    let (m, cm) = volume_of(&env["LIGHTPORT_MAPPINGS"]);
    assert!(m["subPath"].is_null(), "{m:?}");
    assert!(cm["data"].as_mapping().unwrap().keys().all(|k| k.as_str().unwrap().ends_with(".yaml")));
    let (m, cm) = volume_of(&env["LIGHTPORT_CONFIG"]);
    let file = m["subPath"].as_str().expect("the config file is one key of its ConfigMap");
    assert!(cm["data"][file].is_string(), "{cm:?}");

    // The Service, autoscaler and budget all point at this Deployment's pods.
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    let svc = named(&all, "Service", "lightport");
    assert_eq!(&svc["spec"]["selector"], labels);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"].as_str(), Some("http"));
    assert_eq!(&named(&all, "PodDisruptionBudget", "lightport")["spec"]["selector"]["matchLabels"], labels);
    let hpa = named(&all, "HorizontalPodAutoscaler", "lightport");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], d["metadata"]["name"]);
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2, "one pod must survive a disruption");
    assert!(d["spec"]["replicas"].is_null(), "the HPA owns the replica count");
}

/// The pod as Kubernetes would start it: the container's args and env, the Secret's keys as
/// variables, the ConfigMaps written where they are mounted (moved under a temporary
/// directory), the listen addresses moved to free loopback ports. The gateway must come up with
/// that configuration and serve the example mapping.
#[test]
fn the_kubernetes_pod_configuration_starts_the_gateway() {
    let all = manifests();
    let d = named(&all, "Deployment", "lightport");
    let spec = &d["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");

    // Mounts: a whole ConfigMap as a directory, or one key of it as a file (subPath).
    let mut moved: BTreeMap<String, PathBuf> = BTreeMap::new();
    for m in c["volumeMounts"].as_sequence().unwrap() {
        let at = m["mountPath"].as_str().unwrap();
        let v = spec["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == m["name"]).unwrap();
        let data = named(&all, "ConfigMap", v["configMap"]["name"].as_str().unwrap())["data"].as_mapping().unwrap();
        let local = root.join(at.trim_start_matches('/'));
        match m["subPath"].as_str() {
            Some(key) => {
                std::fs::create_dir_all(local.parent().unwrap()).unwrap();
                std::fs::write(&local, data[key].as_str().unwrap()).unwrap();
            }
            None => {
                std::fs::create_dir_all(&local).unwrap();
                for (k, text) in data {
                    std::fs::write(local.join(k.as_str().unwrap()), text.as_str().unwrap()).unwrap();
                }
            }
        }
        moved.insert(at.to_string(), local);
    }

    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lightport"));
    cmd.args(strings(&c["args"])).env_clear().current_dir(dir.path());
    for source in c["envFrom"].as_sequence().into_iter().flatten() {
        let secret = named(&all, "Secret", source["secretRef"]["name"].as_str().unwrap());
        for (k, v) in secret["stringData"].as_mapping().unwrap() {
            cmd.env(k.as_str().unwrap(), v.as_str().unwrap());
        }
    }
    for (name, value) in container_env(c) {
        let value = match name.as_str() {
            "LIGHTPORT_LISTEN" => listen.to_string(),
            "LIGHTPORT_METRICS_LISTEN" => format!("127.0.0.1:{}", free_port()),
            _ => moved.get(&value).map_or(value, |p| p.display().to_string()),
        };
        cmd.env(name, value);
    }
    let gw = start(cmd, listen, dir.path());
    let (status, models) = http_get(listen, "/v1/models").unwrap();
    assert_eq!(status, 200, "{models}");
    for id in configmap_provider_ids(&all) {
        assert!(
            models.contains(&format!("\"{id}/")),
            "the mapping {id} from the ConfigMap is not served\n{}",
            gw.log()
        );
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let all = manifests();
    let k = &all["kustomization.yaml"][0];
    let listed: BTreeSet<String> = strings(&k["resources"]).into_iter().collect();
    let present: BTreeSet<String> = all.keys().filter(|f| *f != "kustomization.yaml").cloned().collect();
    assert_eq!(listed, present);
}

#[test]
fn the_example_mapping_files_pass_lightport_check() {
    let all = manifests();
    let cm = named(&all, "ConfigMap", "lightport-mappings");
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in cm["data"].as_mapping().unwrap() {
        std::fs::write(dir.path().join(name.as_str().unwrap()), text.as_str().unwrap()).unwrap();
    }
    let out = lightport(&["check", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn compose_sets_only_known_variables_and_the_image_healthcheck() {
    let compose: Value = serde_yaml::from_str(&read("examples/docker-compose.yaml")).unwrap();
    let gw = &compose["services"]["lightport"];
    let known = Known::new(&[]);
    known.check_args(&strings(&gw["command"]), "compose");
    let env = gw["environment"].as_mapping().expect("environment as a map");
    for (k, _) in env {
        known.check_env(k.as_str().unwrap(), "compose");
    }
    assert_eq!(gw["environment"]["LIGHTPORT_REDIS_URL"].as_str(), Some("redis://redis:6379"));
    let mut test = vec!["CMD".to_string()];
    test.extend(runtime_stage().healthcheck);
    assert_eq!(strings(&gw["healthcheck"]["test"]), test);
    assert!(compose["services"]["redis"]["healthcheck"].is_mapping());
    assert_eq!(gw["depends_on"]["redis"]["condition"].as_str(), Some("service_healthy"));
}
