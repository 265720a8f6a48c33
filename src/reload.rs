//! Hot reload: watch the mappings directory, recompile, swap the engine atomically, and keep the
//! last good plan of a file that breaks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::engine::Engine;

/// Watch `dir` and swap in a recompiled engine after each change. Problems are logged; a broken
/// file keeps its last good plan. The returned watcher must be kept alive.
pub fn watch(dir: PathBuf, current: Arc<ArcSwap<Engine>>) -> notify::Result<notify::RecommendedWatcher> {
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
            match Engine::from_dir(Some(&dir), Some(&prev)) {
                Ok((engine, errors)) => {
                    for e in &errors {
                        tracing::error!(target: "lightport::reload", "{e}");
                    }
                    tracing::info!(target: "lightport::reload", providers = engine.providers().len(), problems = errors.len(), "mappings reloaded");
                    current.store(Arc::new(engine));
                }
                Err(e) => {
                    tracing::error!(target: "lightport::reload", "cannot read {}: {e}", dir.display())
                }
            }
        }
    });
    Ok(watcher)
}
