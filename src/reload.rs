//! Loading and hot reload of what a gateway serves: the mappings directory and the config
//! file. A change to either is recompiled off the request path and swapped in atomically; a
//! broken mapping keeps its last good plan, a broken config keeps the last good config.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::engine::Engine;
use crate::error::LoadError;
use crate::route::Router;

/// How the loads went: counted for `/metrics`, shown by `/ready`.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    /// Reloads by `result`: `success`, `failure` (some file or the config kept its last good
    /// version).
    pub(crate) counter: prometheus_client::metrics::family::Family<
        Vec<(&'static str, &'static str)>,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Unix time of the last load without a problem.
    pub(crate) last_good: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    /// The last reload's problems (0: it was good).
    last_problems: std::sync::atomic::AtomicUsize,
}

impl ReloadStatus {
    /// The first load, which a server starts only when it is good.
    pub fn loaded(&self) {
        self.last_good.set(unix_now());
    }

    fn reloaded(&self, problems: usize) {
        let result = if problems == 0 { "success" } else { "failure" };
        self.counter.get_or_create(&vec![("result", result)]).inc();
        self.last_problems.store(problems, std::sync::atomic::Ordering::Relaxed);
        if problems == 0 {
            self.loaded();
        }
    }

    /// Reloads done so far: (without a problem, with one).
    pub fn counts(&self) -> (u64, u64) {
        let n = |r: &'static str| self.counter.get_or_create(&vec![("result", r)]).get();
        (n("success"), n("failure"))
    }

    /// The last reload's problems (0 when it was good), and when the files last loaded cleanly.
    pub fn last(&self) -> (usize, f64) {
        (self.last_problems.load(std::sync::atomic::Ordering::Relaxed), self.last_good.get())
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Where a gateway's mappings and config come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A directory of mapping files that add to or override the built-in ones.
    pub mappings: Option<PathBuf>,
    /// The gateway config file.
    pub config: Option<PathBuf>,
    /// Gateway keys from the environment (`LIGHTPORT_API_KEYS`: `name:key` pairs).
    pub env_keys: Option<String>,
}

/// A problem that stops a load: a file's, or one that is no file's (a directory that cannot be
/// read, a bad `LIGHTPORT_API_KEYS`).
#[derive(Debug)]
pub enum Problem {
    File(LoadError),
    Other(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::File(e) => e.fmt(f),
            Problem::Other(m) => f.write_str(m),
        }
    }
}

impl Sources {
    /// The engine: built-in mappings plus the directory's.
    pub fn engine(&self, previous: Option<&Engine>) -> (Engine, Vec<Problem>) {
        match Engine::from_dir(self.mappings.as_deref(), previous) {
            Ok((engine, errors)) => {
                for w in engine.warnings() {
                    tracing::warn!(target: "lightport::reload", "{w}");
                }
                (engine, errors.into_iter().map(Problem::File).collect())
            }
            Err(e) => {
                let dir = self.mappings.as_deref().unwrap_or(Path::new("")).display().to_string();
                (previous.cloned().unwrap_or_default(), vec![Problem::Other(format!("cannot read {dir}: {e}"))])
            }
        }
    }

    /// The router for `engine`: the config file (if any) and the environment's keys.
    pub fn router(&self, engine: &Engine) -> Result<Router, Vec<Problem>> {
        let mut router = match &self.config {
            None => Router::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| vec![Problem::Other(format!("cannot read {}: {e}", path.display()))])?;
                let env = |k: &str| std::env::var(k).ok();
                Router::load(&path.display().to_string(), &text, engine, &env)
                    .map_err(|errors| errors.into_iter().map(Problem::File).collect::<Vec<_>>())?
            }
        };
        if let Some(keys) = &self.env_keys {
            router.add_env_keys(keys).map_err(|e| vec![Problem::Other(e)])?;
        }
        Ok(router)
    }

    /// The files a load reads: the mapping files of the directory and the config file.
    fn files(&self) -> Vec<PathBuf> {
        let mut files = self.mappings.as_deref().and_then(|d| crate::engine::mapping_files(d).ok()).unwrap_or_default();
        files.extend(self.config.iter().cloned());
        files
    }

    /// A digest of what a load would read (names and contents, links followed), so that an
    /// event in a watched directory that changes none of it (another file in the config's
    /// directory, an editor's swap file) costs no reload.
    fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        use std::io::Read as _;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for f in self.files() {
            f.hash(&mut h);
            let mut bytes = Vec::new();
            let read = std::fs::File::open(&f)
                .and_then(|file| file.take(crate::engine::MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
            match read {
                Ok(_) => bytes.hash(&mut h),
                Err(e) => e.kind().hash(&mut h),
            }
        }
        h.finish()
    }

    /// Wait (bounded) until the watched files stop changing: a file rewritten in place is
    /// seen while it is half written, and half a mapping can be a valid, different mapping.
    fn settle(&self) {
        self.settle_with(|| std::thread::sleep(Duration::from_millis(100)));
    }

    /// [`Self::settle`] with its pause between two looks given: tests pass one that writes.
    fn settle_with(&self, mut pause: impl FnMut()) {
        let snapshot = || -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
            self.files()
                .into_iter()
                .map(|f| {
                    let m = std::fs::metadata(&f).ok();
                    let (len, mtime) = (m.as_ref().map_or(0, |m| m.len()), m.and_then(|m| m.modified().ok()));
                    (f, len, mtime)
                })
                .collect()
        };
        let mut before = snapshot();
        for _ in 0..20 {
            pause();
            let now = snapshot();
            if now == before {
                return;
            }
            before = now;
        }
        tracing::warn!(target: "lightport::reload", "files are still changing after 2 s: loading them as they are");
    }

    /// Reload both, keeping what was good: a file with problems keeps its last good plan, a
    /// config with problems the last good config.
    /// Returns how many problems it found (0: everything loaded).
    pub fn reload(&self, engine: &ArcSwap<Engine>, router: &ArcSwap<Router>) -> usize {
        self.settle();
        let prev = engine.load_full();
        let (next, problems) = self.engine(Some(&prev));
        // Where a provider's requests (and keys) go is worth a warning when it changes.
        for p in next.providers() {
            if let Some(old) = prev.provider(p.id()) {
                if old.base_url() != p.base_url() || old.auth_kind() != p.auth_kind() {
                    tracing::warn!(
                        target: "lightport::reload",
                        provider = p.id(),
                        from = old.base_url().unwrap_or("-"),
                        to = p.base_url().unwrap_or("-"),
                        auth_from = old.auth_kind(),
                        auth_to = p.auth_kind(),
                        "a provider's host or auth changed"
                    );
                }
            }
        }
        for p in &problems {
            tracing::error!(target: "lightport::reload", "{p}");
        }
        let providers = next.providers().len();
        match self.router(&next) {
            Ok(r) => {
                engine.store(Arc::new(next));
                router.store(Arc::new(r));
                tracing::info!(target: "lightport::reload", providers, problems = problems.len(), "mappings and config reloaded");
                problems.len()
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(target: "lightport::reload", "{e}");
                }
                // The mappings still change; the last good config stays, checked against them
                // at each request.
                engine.store(Arc::new(next));
                tracing::warn!(target: "lightport::reload", problems = errors.len(), "config not reloaded: the last good config stays");
                problems.len() + errors.len()
            }
        }
    }
}

/// SIGHUP, as a stream of `()` (never, where there are no signals).
fn hangup_signals() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Watch the mappings directory and the config file (through its directory, so that an editor's
/// rename or a Kubernetes ConfigMap's symlink swap is seen), and reload after each change to
/// what a load reads, and on SIGHUP.
/// The returned watcher must be kept alive.
pub fn watch(
    sources: Sources,
    engine: Arc<ArcSwap<Engine>>,
    router: Arc<ArcSwap<Router>>,
    status: Arc<ReloadStatus>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() {
                // A reload is pending already when the channel is full: nothing is lost.
                let _ = tx.try_send(());
            }
        }
    })?;
    let mut watched = Vec::new();
    if let Some(dir) = sources.mappings.as_ref().filter(|d| d.is_dir()) {
        watched.push(dir.clone());
    }
    if let Some(dir) = sources.config.as_ref().and_then(|c| c.parent()) {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if !watched.iter().any(|w| w == dir) {
            watched.push(dir.to_path_buf());
        }
    }
    for dir in &watched {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    // Installed before this returns: a SIGHUP that comes once the server is up must find it
    // (the default action of SIGHUP ends the process).
    let mut hangup = hangup_signals();
    tokio::spawn(async move {
        let digest = |sources: &Sources| {
            let sources = sources.clone();
            tokio::task::spawn_blocking(move || sources.fingerprint())
        };
        // Nothing is taken as the files' state until the first reload: a fingerprint taken
        // here, after the caller loaded them, would take in a change written in between (this
        // task may run well after `watch` returns) and that change would never be loaded.
        let mut last = None;
        loop {
            // SIGHUP reloads whatever the files hold; a file event only when they changed.
            let forced = tokio::select! {
                event = rx.recv() => match event { Some(()) => false, None => break },
                Some(()) = hangup.recv() => true,
            };
            // Editors write in several steps: let a burst of events settle, then reload once.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            let now = digest(&sources).await.ok();
            if !forced && now.is_some() && now == last {
                continue;
            }
            let (sources, engine, router) = (sources.clone(), Arc::clone(&engine), Arc::clone(&router));
            // Reading and compiling is blocking work: off the async workers.
            let status = Arc::clone(&status);
            // The fingerprint is taken before the load, never after: a change written while
            // the load runs must differ from it, or that change would never be loaded.
            last = tokio::task::spawn_blocking(move || {
                let before = sources.fingerprint();
                status.reloaded(sources.reload(&engine, &router));
                before
            })
            .await
            .ok();
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_follows_what_a_load_reads_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mappings = dir.path().join("mappings");
        std::fs::create_dir(&mappings).unwrap();
        std::fs::write(mappings.join("a.yaml"), "name: A\n").unwrap();
        let config = dir.path().join("lightport.yaml");
        std::fs::write(&config, "routes: []\n").unwrap();
        let sources = Sources { mappings: Some(mappings.clone()), config: Some(config.clone()), env_keys: None };
        let first = sources.fingerprint();

        // Other files beside the config, and files in the mappings directory a load skips.
        std::fs::write(dir.path().join("bench-body.json"), "{}").unwrap();
        std::fs::write(dir.path().join(".lightport.yaml.swp"), "x").unwrap();
        std::fs::write(mappings.join("README.md"), "notes").unwrap();
        assert_eq!(sources.fingerprint(), first, "an unrelated file counted");

        std::fs::write(&config, "routes: []\n# changed\n").unwrap();
        let second = sources.fingerprint();
        assert_ne!(second, first, "a config change went unseen");
        std::fs::write(mappings.join("a.yaml"), "name: B\n").unwrap();
        assert_ne!(sources.fingerprint(), second, "a mapping change went unseen");
        let third = sources.fingerprint();
        std::fs::write(mappings.join("b.yml"), "name: C\n").unwrap();
        assert_ne!(sources.fingerprint(), third, "a new mapping file went unseen");
    }

    /// Finding 7 of the hardening issue: a file written in several steps is loaded only once
    /// a look at it finds it as it was at the look before.
    #[test]
    fn a_load_waits_until_a_file_being_written_stops_changing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        let parts = ["name: A\n", "base_url: https://a.test\n", "models: { list: [one] }\n"];
        std::fs::write(&file, parts[0]).unwrap();
        let sources = Sources { mappings: Some(dir.path().to_path_buf()), config: None, env_keys: None };
        let mut pauses = 0;
        sources.settle_with(|| {
            pauses += 1;
            // The writer goes on for as long as it has parts; each append changes the length.
            if let Some(part) = parts.get(pauses) {
                use std::io::Write as _;
                std::fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(part.as_bytes()).unwrap();
            }
        });
        assert_eq!(pauses, parts.len(), "returned before the last write, or waited past it");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), parts.concat());

        // A file that never stops changing is loaded as it is after a bounded wait.
        let mut n = 0u32;
        sources.settle_with(|| {
            n += 1;
            std::fs::write(&file, "x".repeat(n as usize)).unwrap();
        });
        assert_eq!(n, 20);
    }
}
