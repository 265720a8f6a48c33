//! The `lightport` command: `serve`, `check`, `schema`, `health`. A thin shell over the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};

use lightport::reload::{watch, Sources};
use lightport::server::{listener, metrics_router, router_with, traces, AppState, Config};
use lightport::{mapping_schema, provider_table, read_sources, vectors, with_builtin, Engine, SourceFile};

/// mimalloc: the request and stream paths allocate many small JSON nodes, which it serves
/// markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "lightport",
    version,
    about = "An LLM gateway: OpenAI's API in front, any provider behind, each provider one YAML mapping file."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `lightport serve`: what to serve, and every limit, as flags or `LIGHTPORT_*` variables.
#[derive(clap::Args)]
struct ServeArgs {
    /// A directory of mapping files that add to or override the built-in ones (hot-reloaded).
    #[arg(long, env = "LIGHTPORT_MAPPINGS")]
    mappings: Option<PathBuf>,
    /// A gateway config file: targets, routes, gateway keys, limits (hot-reloaded).
    #[arg(long, env = "LIGHTPORT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LIGHTPORT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Seconds to wait for an upstream's headers, its whole non-stream body, or its next stream
    /// chunk (where a target sets no timeouts of its own).
    #[arg(long, env = "LIGHTPORT_UPSTREAM_TIMEOUT", default_value_t = 600.0)]
    upstream_timeout: f64,
    /// The longest a stream may last, in seconds, however steadily it trickles.
    #[arg(long, env = "LIGHTPORT_MAX_STREAM_DURATION", default_value_t = 3600.0)]
    max_stream_duration: f64,
    /// Largest request body accepted, in bytes (after decompression).
    #[arg(long, env = "LIGHTPORT_MAX_BODY_BYTES", default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Largest non-stream upstream answer read, in bytes.
    #[arg(long, env = "LIGHTPORT_MAX_UPSTREAM_BODY_BYTES", default_value_t = 32 << 20)]
    max_upstream_body_bytes: usize,
    /// Largest line, event or frame of an upstream stream, in bytes.
    #[arg(long, env = "LIGHTPORT_MAX_STREAM_EVENT_BYTES", default_value_t = 8 << 20)]
    max_stream_event_bytes: usize,
    /// Requests handled at once; beyond it, 503 with Retry-After.
    #[arg(long, env = "LIGHTPORT_MAX_IN_FLIGHT", default_value_t = 4096)]
    max_in_flight: usize,
    /// Client connections open at once; beyond it, new ones wait in the listen backlog.
    #[arg(long, env = "LIGHTPORT_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Seconds a client has to send a request's head.
    #[arg(long, env = "LIGHTPORT_HEADER_TIMEOUT", default_value_t = 30.0)]
    header_timeout: f64,
    /// Seconds a client has to send a request's whole body.
    #[arg(long, env = "LIGHTPORT_BODY_TIMEOUT", default_value_t = 60.0)]
    body_timeout: f64,
    /// Seconds an idle keep-alive connection (or one whose writes are stalled) stays open.
    #[arg(long, env = "LIGHTPORT_IDLE_TIMEOUT", default_value_t = 60.0)]
    idle_timeout: f64,
    /// A Redis URL for shared limits and circuit breakers (replaces the config file's
    /// `state.redis`); without one they are per process.
    #[arg(long, env = "LIGHTPORT_REDIS_URL")]
    redis: Option<String>,
    /// Seconds to finish open requests and streams after SIGTERM or SIGINT, then exit 0.
    #[arg(long, env = "LIGHTPORT_DRAIN_TIMEOUT", default_value_t = 25.0)]
    drain_timeout: f64,
    /// Log lines as human text or as one JSON object per line.
    #[arg(long, env = "LIGHTPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log lines waiting to be written; beyond it new lines are dropped rather than make a
    /// request wait for a slow log reader.
    #[arg(long, env = "LIGHTPORT_LOG_BUFFER_LINES", default_value_t = 16_384)]
    log_buffer_lines: usize,
    /// Export traces (a span per request and per upstream attempt) to this OTLP/HTTP collector,
    /// e.g. `http://otel-collector:4318` (`/v1/traces` is added unless a path is given).
    #[arg(long, env = "LIGHTPORT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Serve `/metrics` on this address instead of the main one.
    #[arg(long, env = "LIGHTPORT_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Distinct model names a metrics label takes before it says `other`.
    #[arg(long, env = "LIGHTPORT_METRICS_MAX_MODELS", default_value_t = 200)]
    metrics_max_models: usize,
    /// Metric labels to leave out, comma-separated (e.g. `gen_ai_request_model,lightport_route`).
    #[arg(long, env = "LIGHTPORT_METRICS_OMIT_LABELS", value_delimiter = ',')]
    metrics_omit_labels: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.001))
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(Box<ServeArgs>),
    /// Validate mapping files and run their golden vectors; exit 1 on any problem.
    Check {
        /// Mapping files or directories (default: mappings).
        paths: Vec<PathBuf>,
        /// Another directory of vectors, laid out as `<dir>/<provider id>/<case>/`.
        #[arg(long)]
        vectors: Vec<PathBuf>,
        /// A gateway config file to check (against the built-in mappings and those named here).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the JSON Schema of a mapping file (or, with --config, of a gateway config file).
    Schema {
        #[arg(long)]
        config: bool,
    },
    /// Print the reference table of transform operations, as Markdown (generated from the engine).
    Operations {
        /// Rewrite the table between `<!-- operations:start -->` and `<!-- operations:end -->` in this file.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Print the table of providers and what each supports, as Markdown (generated from the files).
    Providers {
        /// A directory of mapping files to add to the built-in ones.
        #[arg(long)]
        mappings: Option<PathBuf>,
        /// Rewrite the table between `<!-- providers:start -->` and `<!-- providers:end -->` in this file.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Exit 0 if a health URL answers 2xx within 2 s, 1 otherwise: a HEALTHCHECK without curl.
    Health {
        /// A plain http:// URL (default: /health of the local gateway, on LIGHTPORT_LISTEN's port)
        #[arg(long)]
        url: Option<String>,
    },
}

/// The log thread's write buffer: a burst of queued lines leaves in one write of at most this.
const LOG_WRITE_BYTES: usize = 64 * 1024;

/// mimalloc's `mi_option_arena_eager_commit` (the same index in its v2 and v3 headers).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Allocator options, each unless the operator set mimalloc's own variable:
/// - arena_eager_commit 0: commit arena memory as it is used rather than a whole arena up front
///   (freed pages of an eagerly committed arena stay resident). Measured with 2,000 open
///   streams on a fresh process: 146 → 103 MB resident, idle 29 → 18 MB, CPU per request
///   within the run-to-run noise.
///
/// Freed pages go back to the OS after mimalloc's own delay (`MIMALLOC_PURGE_DELAY`, 1 s in
/// the v3 it builds). Giving them back at once (0, the gateway's setting until 2026-12-02)
/// saved 5 MB with 2,000 open streams (103 against 108 MB) but cost ~1.8 page faults per
/// request instead of 0.05, and 10% more CPU per request in two interleaved runs.
///
/// mimalloc makes its first arena at the first allocation, which Rust's runtime does before
/// `main`; so on Linux this runs as a load-time constructor, and reads the environment with
/// `getenv`, which does not allocate.
extern "C" fn allocator_options() {
    extern "C" {
        fn getenv(name: *const std::ffi::c_char) -> *mut std::ffi::c_char;
    }
    // SAFETY: getenv reads the environment block, which nothing writes this early; setting an
    // allocator option is a plain store mimalloc reads when it next needs the option.
    unsafe {
        if getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static ALLOCATOR_OPTIONS: extern "C" fn() = allocator_options;

fn main() -> ExitCode {
    #[cfg(not(target_os = "linux"))]
    allocator_options();
    let cli = Cli::parse();
    match cli.command {
        Command::Schema { config } => {
            let schema = if config { lightport::route::schema() } else { mapping_schema() };
            println!("{}", serde_json::to_string_pretty(&schema).expect("schema serialises"));
            ExitCode::SUCCESS
        }
        Command::Check { paths, vectors, config } => check(paths, vectors, config),
        Command::Operations { write } => {
            let table = lightport::operation_reference();
            match write {
                Some(file) => match write_section(&file, "operations", &table) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("lightport: {}: {e}", file.display());
                        ExitCode::from(2)
                    }
                },
                None => {
                    print!("{table}");
                    ExitCode::SUCCESS
                }
            }
        }
        Command::Providers { mappings, write } => match mappings.as_deref().map(read_sources).transpose() {
            Ok(own) => {
                let (own, mut errors) = own.unwrap_or_default();
                let (engine, more) = Engine::load(&with_builtin(own), &|_| None, None);
                errors.extend(more);
                for e in &errors {
                    eprintln!("{e}");
                }
                let table = provider_table(engine.providers());
                match write {
                    Some(file) => {
                        if let Err(e) = write_section(&file, "providers", &table) {
                            eprintln!("lightport: {}: {e}", file.display());
                            return ExitCode::from(2);
                        }
                    }
                    None => print!("{table}"),
                }
                if errors.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("lightport: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
            let (_flush_logs_on_exit, exporter) = match init_logs(&args, runtime.handle()) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("lightport: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(serve(*args));
            if let Some(e) = exporter {
                e.shutdown();
            }
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lightport: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Health { url } => health(url),
    }
}

/// Logs (text or JSON, written by a thread of their own) and, with an OTLP endpoint, traces.
/// The log writer's guard lives as long as the process (dropping it flushes what is left).
fn init_logs(
    args: &ServeArgs,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<(tracing_appender::non_blocking::WorkerGuard, Option<traces::Exporter>)> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIGHTPORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // Trace spans are for the exporter, not the log lines.
        .add_directive(format!("{}=off", traces::TARGET).parse()?);
    // Lines are written by a thread of their own, so a request never waits on stderr (a pipe to
    // a container runtime); beyond the buffer, lines are dropped, not waited for. The thread
    // takes every line queued, then flushes: one write for a burst of lines, not one per line,
    // and a line alone still leaves at once.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(args.log_buffer_lines.max(1))
        .lossy(true)
        .thread_name("lightport-log")
        .finish(std::io::BufWriter::with_capacity(LOG_WRITE_BYTES, std::io::stderr()));
    // Colours only for a person at a terminal, never into a file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    lightport::server::access::install(writer.clone(), matches!(args.log_format, LogFormat::Json), ansi);
    let logs = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(logs.with_filter(filter));
    match &args.otlp_endpoint {
        Some(endpoint) => {
            let (layer, exporter) = traces::layer(endpoint, runtime.clone())?;
            let only_traces =
                tracing_subscriber::filter::Targets::new().with_target(traces::TARGET, tracing::Level::INFO);
            registry.with(layer.with_filter(only_traces)).init();
            Ok((guard, Some(exporter)))
        }
        None => {
            registry.init();
            Ok((guard, None))
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Installed first, so that a SIGTERM during start-up is a clean stop too.
    let signal = listener::shutdown_signal();
    let config = Config {
        max_body_bytes: args.max_body_bytes,
        max_upstream_body_bytes: args.max_upstream_body_bytes,
        upstream_timeout: secs(args.upstream_timeout),
        max_stream_duration: secs(args.max_stream_duration),
        max_in_flight: args.max_in_flight.max(1),
        stream_limits: lightport::StreamLimits { max_event_bytes: args.max_stream_event_bytes, ..Default::default() },
        traces: args.otlp_endpoint.is_some(),
        metrics: lightport::server::metrics::MetricsConfig {
            max_models: args.metrics_max_models,
            omit_labels: args.metrics_omit_labels.iter().map(|l| l.trim().to_string()).collect(),
        },
    };
    let limits = listener::Limits {
        max_connections: args.max_connections.max(1),
        header_read_timeout: secs(args.header_timeout),
        body_read_timeout: secs(args.body_timeout),
        idle_timeout: secs(args.idle_timeout),
        drain_timeout: secs(args.drain_timeout),
        ..listener::Limits::default()
    };
    let sources =
        Sources { mappings: args.mappings, config: args.config, env_keys: std::env::var("LIGHTPORT_API_KEYS").ok() };
    let listen = args.listen;
    let (engine, problems) = sources.engine(None);
    let router = match (problems.is_empty(), sources.router(&engine)) {
        (true, Ok(router)) => router,
        (_, result) => {
            let more = result.err().unwrap_or_default();
            for p in problems.iter().chain(&more) {
                eprintln!("{p}");
            }
            anyhow::bail!(
                "{} problem(s) in the mapping and config files; `lightport check` shows them too",
                problems.len() + more.len()
            );
        }
    };
    if router.requires_key() {
        tracing::info!("gateway keys required");
    } else {
        tracing::warn!("no gateway keys configured: the gateway is open to anyone who can reach it");
    }
    let engine = Arc::new(ArcSwap::from_pointee(engine));
    let router = Arc::new(ArcSwap::from_pointee(router));
    let providers = engine.load().providers().len();
    let store = match args.redis.clone().or_else(|| router.load().redis.clone()) {
        Some(url) => {
            let fail = match router.load().fail_mode {
                lightport::route::FailMode::Open => lightport::server::limits::FailMode::Open,
                lightport::route::FailMode::Closed => lightport::server::limits::FailMode::Closed,
            };
            let store = lightport::server::limits::Store::redis(&url, fail)
                .await
                .map_err(|e| anyhow::anyhow!("the limits store at the Redis URL: {e}"))?;
            tracing::info!(healthy = store.backend_healthy(), "limits and circuit breakers shared through Redis");
            store
        }
        None => lightport::server::limits::Store::memory(),
    };
    let state = AppState::with_store(Arc::clone(&engine), Arc::clone(&router), store, config);
    let _watcher = if sources.mappings.as_ref().is_some_and(|d| d.is_dir()) || sources.config.is_some() {
        Some(
            watch(sources.clone(), engine, router, Arc::clone(&state.reloads))
                .context("watching the mappings and config")?,
        )
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    if let Some(at) = args.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(at).await.with_context(|| format!("binding {at} for metrics"))?;
        tracing::info!("metrics on http://{}/metrics", metrics.local_addr()?);
        // It ends with the process; a drain is for the gateway's requests.
        tokio::spawn(listener::serve(
            metrics,
            metrics_router(Arc::clone(&state)),
            limits.clone(),
            std::future::pending(),
        ));
    }
    tracing::info!("lightport listening on http://{addr} with {providers} providers");
    listener::serve(listener, router_with(state, args.metrics_listen.is_none()), limits, signal).await?;
    tracing::info!("stopped");
    Ok(())
}

/// `lightport health`: one HTTP/1.1 GET over a raw TCP connection (no TLS, no new dependency),
/// bounded by 2 s in all. The default URL is the local gateway as `serve` would bind it here: the
/// address of LIGHTPORT_LISTEN, with a wildcard address (0.0.0.0, ::) read as loopback.
fn health(url: Option<String>) -> ExitCode {
    use std::io::{Read as _, Write as _};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream, ToSocketAddrs as _};
    use std::time::Instant;

    let url = url.unwrap_or_else(|| {
        let listen: SocketAddr = std::env::var("LIGHTPORT_LISTEN")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)));
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}/health", SocketAddr::new(ip, listen.port()))
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    let status = (|| -> Result<u16, String> {
        let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && !p.contains(']'));
        let target = if has_port { authority.to_string() } else { format!("{authority}:80") };
        let addrs: Vec<SocketAddr> = target.to_socket_addrs().map_err(|e| e.to_string())?.collect();
        let mut last = String::from("no address");
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut tcp = match TcpStream::connect_timeout(&addr, left) {
                Ok(tcp) => tcp,
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            tcp.set_read_timeout(Some(left))
                .and_then(|()| tcp.set_write_timeout(Some(left)))
                .map_err(|e| e.to_string())?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: lightport-health\r\nConnection: close\r\n\r\n"
            );
            tcp.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
            // The status line is all we need: "HTTP/1.1 200 OK".
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.contains(&b'\n') && head.len() < 4096 && Instant::now() < deadline {
                match tcp.read(&mut buf).map_err(|e| e.to_string())? {
                    0 => break,
                    n => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head);
            return line
                .strip_prefix("HTTP/1.")
                .and_then(|l| l.get(2..5))
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| format!("not an HTTP answer: {:?}", line.lines().next().unwrap_or("")));
        }
        Err(last)
    })();
    match status {
        Ok(code) if (200..300).contains(&code) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("lightport health: {url}: HTTP {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lightport health: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the vectors of a mapping directory are found: `<dir>/vectors/` and, in a repository
/// laid out like this one, `<dir>/../tests/fixtures/`.
fn vector_roots(dir: &Path) -> Vec<PathBuf> {
    [dir.join("vectors"), dir.join("..").join("tests").join("fixtures")].into_iter().filter(|p| p.is_dir()).collect()
}

fn check(paths: Vec<PathBuf>, extra_vectors: Vec<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let paths = match (paths.is_empty(), &config) {
        (true, None) => vec![PathBuf::from("mappings")],
        _ => paths,
    };
    let mut own: Vec<SourceFile> = Vec::new();
    let mut read_problems = 0;
    let mut roots: Vec<PathBuf> = extra_vectors;
    for p in &paths {
        match read_sources(p) {
            Ok((files, problems)) => {
                for e in &problems {
                    println!("{e}");
                }
                read_problems += problems.len();
                own.extend(files);
            }
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
        let dir = if p.is_dir() { p.clone() } else { p.parent().map(Path::to_path_buf).unwrap_or_default() };
        for r in vector_roots(if dir.as_os_str().is_empty() { Path::new(".") } else { &dir }) {
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
    }
    // Built-in mappings are there for `extends`; the files named here override them.
    let ids: Vec<String> = own.iter().map(|f| f.id.clone()).collect();
    let sources = with_builtin(own.clone());
    // The file as written (no environment), exactly as `serve` loads it.
    let (loaded, errors) = Engine::load(&sources, &|_| None, None);
    let errors: Vec<_> = errors.into_iter().filter(|e| ids.contains(&e.id)).collect();
    for e in &errors {
        println!("{e}");
    }
    // Warnings do not fail the check: the file loads, but says what it could lose.
    let warnings: Vec<_> = loaded.warnings().iter().filter(|w| ids.contains(&w.id)).collect();
    for w in &warnings {
        println!("{}:{}: warning: {}", w.file, w.line, w.message);
    }
    let (engine, _) = vectors::engine_for_vectors(&sources);
    let plans: Vec<_> = engine.providers().iter().filter(|p| ids.iter().any(|i| i == p.id())).cloned().collect();
    let mut ran = 0;
    let mut failures = Vec::new();
    for root in &roots {
        let (n, f) = vectors::run_all(&plans, root);
        ran += n;
        failures.extend(f);
    }
    for f in &failures {
        println!("{f}");
    }
    // A config file is checked against the mappings as `serve` would load them.
    let mut config_problems = 0;
    if let Some(path) = &config {
        let (engine, _) = Engine::load(&sources, &|_| None, None);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                if let Err(errors) =
                    lightport::route::Router::load(&path.display().to_string(), &text, &engine, &|_| None)
                {
                    for e in &errors {
                        println!("{e}");
                    }
                    config_problems = errors.len();
                }
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let problems = read_problems + errors.len() + failures.len() + config_problems;
    eprintln!(
        "checked {} mapping file(s){}, ran {ran} vector(s): {}",
        own.len(),
        if config.is_some() { " and a config file" } else { "" },
        if problems == 0 { "all passed".to_string() } else { format!("{problems} problem(s)") }
    );
    if !warnings.is_empty() {
        eprintln!("{} warning(s)", warnings.len());
    }
    if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Replace the generated section `<!-- <name>:start -->` ... `<!-- <name>:end -->` of a file.
fn write_section(file: &Path, name: &str, table: &str) -> std::io::Result<()> {
    let (start, end) = (format!("<!-- {name}:start -->"), format!("<!-- {name}:end -->"));
    let text = std::fs::read_to_string(file)?;
    let (Some(a), Some(b)) = (text.find(&start), text.find(&end)) else {
        return Err(std::io::Error::other(format!("no {start} ... {end} section")));
    };
    let updated = format!("{}{start}\n{table}{}", &text[..a], &text[b..]);
    std::fs::write(file, updated)
}
