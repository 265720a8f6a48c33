//! The loaded providers: built-in mappings plus a directory's, routing of a model name to a
//! provider, and hot reload (watch the directory, recompile, swap atomically, keep the last good
//! plan of a file that breaks).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::error::GatewayError;
use crate::plan::load::{load, LoadError, SourceFile};
use crate::plan::{EnvLookup, ProviderPlan};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_mappings.rs"));
}

/// The mapping files compiled into the binary.
pub fn builtin_sources() -> Vec<SourceFile> {
    builtin::BUILTIN
        .iter()
        .map(|(id, text)| SourceFile {
            id: id.to_string(),
            path: format!("<built-in>/{id}.yaml"),
            text: text.to_string(),
        })
        .collect()
}

/// The `.yaml`/`.yml` files of a directory, or one file.
pub fn read_sources(path: &Path) -> std::io::Result<Vec<SourceFile>> {
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    files
        .into_iter()
        .map(|f| {
            Ok(SourceFile {
                id: f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                text: std::fs::read_to_string(&f)?,
                path: f.display().to_string(),
            })
        })
        .collect()
}

/// Built-in sources, overridden and extended by the files of `dir`.
pub fn sources_with(dir: Option<&Path>) -> std::io::Result<Vec<SourceFile>> {
    let mut sources = builtin_sources();
    if let Some(dir) = dir {
        for own in read_sources(dir)? {
            match sources.iter_mut().find(|s| s.id == own.id) {
                Some(slot) => *slot = own,
                None => sources.push(own),
            }
        }
    }
    sources.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(sources)
}

/// The providers a server routes to.
#[derive(Default)]
pub struct Registry {
    providers: Vec<Arc<ProviderPlan>>,
    by_id: HashMap<String, Arc<ProviderPlan>>,
}

impl Registry {
    /// Compile `sources`. A file with problems keeps its plan from `previous`, if it had one.
    pub fn build(
        sources: &[SourceFile],
        env: EnvLookup<'_>,
        previous: Option<&Registry>,
    ) -> (Registry, Vec<LoadError>) {
        let (plans, errors) = load(sources, env);
        let mut providers: Vec<Arc<ProviderPlan>> = plans.into_iter().map(Arc::new).collect();
        if let Some(prev) = previous {
            for e in &errors {
                if let Some(old) = prev.by_id.get(&e.id) {
                    if !providers.iter().any(|p| p.id == e.id) {
                        providers.push(Arc::clone(old));
                    }
                }
            }
        }
        providers.retain(|p| !p.is_abstract);
        providers.sort_by(|a, b| a.id.cmp(&b.id));
        let by_id = providers.iter().map(|p| (p.id.clone(), Arc::clone(p))).collect();
        (Registry { providers, by_id }, errors)
    }

    pub fn providers(&self) -> &[Arc<ProviderPlan>] {
        &self.providers
    }

    pub fn get(&self, id: &str) -> Option<&Arc<ProviderPlan>> {
        self.by_id.get(id)
    }

    /// Which provider serves `model`, and the model name to send it: `provider/model` first,
    /// then the `x-lightport-provider` header, then the first provider whose patterns match.
    pub fn route(
        &self,
        model: &str,
        provider_header: Option<&str>,
    ) -> Result<(Arc<ProviderPlan>, String), GatewayError> {
        if let Some((prefix, rest)) = model.split_once('/') {
            if let Some(p) = self.by_id.get(prefix) {
                if rest.is_empty() {
                    return Err(GatewayError::invalid(format!("'{model}' names provider '{prefix}' but no model"))
                        .with_param("model"));
                }
                return Ok((Arc::clone(p), rest.to_string()));
            }
        }
        if let Some(id) = provider_header {
            return match self.by_id.get(id) {
                Some(p) => Ok((Arc::clone(p), model.to_string())),
                None => Err(GatewayError::not_found(
                    format!("unknown provider '{id}' in x-lightport-provider"),
                    "provider_not_found",
                )),
            };
        }
        self.providers
            .iter()
            .find(|p| p.patterns.iter().any(|g| g.matches(model)))
            .map(|p| (Arc::clone(p), model.to_string()))
            .ok_or_else(|| {
                GatewayError::not_found(
                    format!("the model '{model}' does not exist or matches no provider: name one as '<provider>/<model>' (GET /v1/models lists them)"),
                    "model_not_found",
                )
                .with_param("model")
            })
    }
}

/// Load the registry for `dir` with the process environment.
pub fn load_registry(dir: Option<&Path>, previous: Option<&Registry>) -> std::io::Result<(Registry, Vec<LoadError>)> {
    let sources = sources_with(dir)?;
    Ok(Registry::build(&sources, &|k| std::env::var(k).ok(), previous))
}

/// Watch `dir` and swap in a recompiled registry after each change. Problems are logged; a broken
/// file keeps its last good plan. The returned watcher must be kept alive.
pub fn watch(dir: PathBuf, current: Arc<ArcSwap<Registry>>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Editors write in several steps: let a burst of events settle, then reload once.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            let prev = current.load_full();
            match load_registry(Some(&dir), Some(&prev)) {
                Ok((reg, errors)) => {
                    for e in &errors {
                        tracing::error!(target: "lightport::reload", "{e}");
                    }
                    tracing::info!(target: "lightport::reload", providers = reg.providers().len(), problems = errors.len(), "mappings reloaded");
                    current.store(Arc::new(reg));
                }
                Err(e) => {
                    tracing::error!(target: "lightport::reload", "cannot read {}: {e}", dir.display())
                }
            }
        }
    });
    Ok(watcher)
}

/// The Markdown table of providers and their capabilities, as the README shows it.
pub fn provider_table(plans: &[ProviderPlan]) -> String {
    let mark = |b: bool| if b { "yes" } else { "-" };
    let mut out = String::from(
        "| id | provider | chat | stream | tools | vision | embeddings |\n|---|---|---|---|---|---|---|\n",
    );
    let mut plans: Vec<&ProviderPlan> = plans.iter().filter(|p| !p.is_abstract).collect();
    plans.sort_by(|a, b| a.id.cmp(&b.id));
    for p in plans {
        let c = p.capabilities;
        let pass = |b: bool| if c.passthrough && b { "pass-through" } else { mark(b) };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            p.id,
            p.name,
            mark(c.chat),
            mark(c.stream),
            pass(c.tools),
            pass(c.vision),
            mark(c.embeddings)
        ));
    }
    out
}
