//! The engine: the compiled providers (built-in mappings plus a directory's), and the routing
//! of a model name to a provider. Swapped whole on reload; a file that breaks keeps its last
//! good plan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::call::{capabilities, Call};
use crate::error::{Error, LoadError};
use crate::plan::load::{load, SourceFile};
use crate::plan::{Endpoint, EnvLookup, Provider};

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

/// The largest mapping file read, in bytes (the largest built-in one is about 25 KB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most mapping files read from a directory.
pub const MAX_FILES: usize = 1000;

/// The `.yaml`/`.yml` files of a directory, or one file. Only regular files are read (a FIFO,
/// a device, a dangling link is reported and skipped), each at most [`MAX_FILE_BYTES`], at most
/// [`MAX_FILES`] of them; the problems come back beside the files, which load normally.
pub fn read_sources(path: &Path) -> std::io::Result<(Vec<SourceFile>, Vec<LoadError>)> {
    let mut files = if path.is_dir() { mapping_files(path)? } else { vec![path.to_path_buf()] };
    let mut problems = Vec::new();
    let problem = |f: &Path, message: String| LoadError {
        file: f.display().to_string(),
        line: 1,
        kind: crate::error::ProblemKind::Io,
        message,
        id: f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    if files.len() > MAX_FILES {
        problems.push(problem(path, format!("more than {MAX_FILES} mapping files: the rest are not read")));
        files.truncate(MAX_FILES);
    }
    let mut sources = Vec::with_capacity(files.len());
    for f in files {
        // `metadata` follows links: what is read is what the link points at.
        match std::fs::metadata(&f) {
            Err(e) => problems.push(problem(&f, format!("cannot read it: {e}"))),
            Ok(m) if !m.is_file() => problems.push(problem(&f, "not a regular file: skipped".into())),
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                problems.push(problem(&f, format!("larger than {MAX_FILE_BYTES} bytes: skipped")))
            }
            Ok(_) => {
                use std::io::Read as _;
                let mut text = String::new();
                let read =
                    std::fs::File::open(&f).and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text));
                match read {
                    Err(e) => problems.push(problem(&f, format!("cannot read it: {e}"))),
                    Ok(n) if n as u64 > MAX_FILE_BYTES => {
                        problems.push(problem(&f, format!("larger than {MAX_FILE_BYTES} bytes: skipped")))
                    }
                    Ok(_) => sources.push(SourceFile {
                        id: f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                        text,
                        path: f.display().to_string(),
                    }),
                }
            }
        }
    }
    Ok((sources, problems))
}

/// The mapping files of a directory (`.yaml`, `.yml`), sorted.
pub(crate) fn mapping_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Built-in sources, overridden and extended by `own` (by id).
pub fn with_builtin(own: Vec<SourceFile>) -> Vec<SourceFile> {
    let mut sources = builtin_sources();
    for f in own {
        match sources.iter_mut().find(|s| s.id == f.id) {
            Some(slot) => *slot = f,
            None => sources.push(f),
        }
    }
    sources.sort_by(|a, b| a.id.cmp(&b.id));
    sources
}

/// The providers a gateway routes to.
#[derive(Debug, Default, Clone)]
pub struct Engine {
    providers: Vec<Arc<Provider>>,
    by_id: HashMap<String, Arc<Provider>>,
    /// Warnings of the files that loaded (`ProblemKind::Unhandled`).
    warnings: Vec<LoadError>,
}

impl Engine {
    /// The built-in mappings, with keys and base URLs from the process environment.
    ///
    /// ```
    /// let engine = lightport::Engine::builtin().expect("the built-in mappings compile");
    /// assert!(engine.provider("openai").is_some());
    /// ```
    pub fn builtin() -> Result<Engine, Vec<LoadError>> {
        let (engine, errors) = Engine::load(&builtin_sources(), &|k| std::env::var(k).ok(), None);
        if errors.is_empty() {
            Ok(engine)
        } else {
            Err(errors)
        }
    }

    /// The built-in mappings plus the files of `dir` (which add to or replace them, by id),
    /// with the process environment.
    pub fn from_dir(dir: Option<&Path>, previous: Option<&Engine>) -> std::io::Result<(Engine, Vec<LoadError>)> {
        let (own, mut problems) = match dir {
            Some(d) => read_sources(d)?,
            None => (Vec::new(), Vec::new()),
        };
        let (mut engine, errors) = Engine::load(&with_builtin(own), &|k| std::env::var(k).ok(), previous);
        // A file that could not be read keeps its last good plan too.
        if let Some(prev) = previous {
            engine.keep(prev, problems.iter().map(|p| p.id.as_str()));
        }
        problems.extend(errors);
        Ok((engine, problems))
    }

    /// Compile `sources`, reading keys, base URLs and vars through `env`. A file with problems
    /// yields no provider, or keeps its plan from `previous` when there is one.
    ///
    /// ```
    /// use lightport::{Engine, SourceFile};
    /// let file = SourceFile {
    ///     id: "echo".into(),
    ///     path: "echo.yaml".into(),
    ///     text: "name: Echo\nbase_url: http://127.0.0.1:9\nchat: { path: /chat, request: $, response: $ }\n".into(),
    /// };
    /// let (engine, problems) = Engine::load(&[file], &|_| None, None);
    /// assert!(problems.is_empty());
    /// assert_eq!(engine.provider("echo").unwrap().name(), "Echo");
    /// ```
    pub fn load(sources: &[SourceFile], env: EnvLookup<'_>, previous: Option<&Engine>) -> (Engine, Vec<LoadError>) {
        let (plans, problems) = load(sources, env);
        let (warnings, errors): (Vec<_>, Vec<_>) = problems.into_iter().partition(|e| e.kind.is_warning());
        let mut providers: Vec<Arc<Provider>> = plans.into_iter().map(Arc::new).collect();
        providers.retain(|p| !p.is_abstract);
        let mut engine = Engine { providers, by_id: HashMap::new(), warnings };
        engine.index();
        if let Some(prev) = previous {
            engine.keep(prev, errors.iter().map(|e| e.id.as_str()));
        }
        (engine, errors)
    }

    /// What the files that loaded could still lose without a word (`file:line`), for `check`
    /// and the server's log.
    pub fn warnings(&self) -> &[LoadError] {
        &self.warnings
    }

    fn index(&mut self) {
        self.providers.sort_by(|a, b| a.id.cmp(&b.id));
        self.by_id = self.providers.iter().map(|p| (p.id.clone(), Arc::clone(p))).collect();
    }

    /// Keep `previous`'s plans of these files (that failed to load now).
    fn keep<'a>(&mut self, previous: &Engine, ids: impl Iterator<Item = &'a str>) {
        let mut kept = false;
        for id in ids {
            if let (Some(old), false) = (previous.by_id.get(id), self.by_id.contains_key(id)) {
                self.providers.push(Arc::clone(old));
                kept = true;
            }
        }
        if kept {
            self.index();
        }
    }

    /// Every provider, by id.
    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    pub fn provider(&self, id: &str) -> Option<&Arc<Provider>> {
        self.by_id.get(id)
    }

    /// Which provider serves `model`, and the model name to send it: `provider/model` first,
    /// then the `x-lightport-provider` header, then the first provider whose patterns match.
    pub fn route(&self, model: &str, provider_header: Option<&str>) -> Result<(Arc<Provider>, String), Error> {
        if let Some((prefix, rest)) = model.split_once('/') {
            if let Some(p) = self.by_id.get(prefix) {
                if rest.is_empty() {
                    return Err(
                        Error::invalid(format!("'{model}' names provider '{prefix}' but no model")).with_param("model")
                    );
                }
                return Ok((Arc::clone(p), rest.to_string()));
            }
        }
        if let Some(id) = provider_header {
            return match self.by_id.get(id) {
                Some(p) => Ok((Arc::clone(p), model.to_string())),
                None => Err(Error::not_found(
                    format!("unknown provider '{id}' in x-lightport-provider"),
                    "provider_not_found",
                )),
            };
        }
        self.providers.iter().find(|p| p.matches(model)).map(|p| (Arc::clone(p), model.to_string())).ok_or_else(|| {
            Error::not_found(
                format!("the model '{model}' does not exist or matches no provider: name one as '<provider>/<model>' (GET /v1/models lists them)"),
                "model_not_found",
            )
            .with_param("model")
        })
    }

    /// Route a canonical request by its `model` and make its call; `body.model` becomes the
    /// provider's model name.
    ///
    /// ```
    /// use lightport::{Endpoint, Engine};
    /// let (engine, _) = Engine::load(&lightport::builtin_sources(), &|_| None, None);
    /// let mut body = serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]});
    /// let mut call = engine.call(Endpoint::Chat, &mut body, None).unwrap();
    /// assert_eq!(call.provider().id(), "openai");
    /// let upstream = call.request(body, Some("sk-test")).unwrap();
    /// assert_eq!(upstream.url.as_str(), "https://api.openai.com/v1/chat/completions");
    /// ```
    pub fn call(&self, endpoint: Endpoint, body: &mut Value, provider_header: Option<&str>) -> Result<Call, Error> {
        let model = body.get("model").and_then(Value::as_str).unwrap_or_default();
        let (provider, model) = self.route(model, provider_header)?;
        body["model"] = Value::String(model);
        Call::new(provider, endpoint, body)
    }
}

/// The Markdown table of providers and their capabilities, as the README shows it.
pub fn provider_table(providers: &[Arc<Provider>]) -> String {
    let mark = |b: bool| if b { "yes" } else { "-" };
    let mut out = String::from(
        "| id | provider | chat | stream | tools | vision | embeddings | auth |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut providers: Vec<&Arc<Provider>> = providers.iter().filter(|p| !p.is_abstract).collect();
    providers.sort_by(|a, b| a.id.cmp(&b.id));
    for p in providers {
        let c = capabilities(p);
        let pass = |b: bool| if c.passthrough && b { "pass-through" } else { mark(b) };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            p.id,
            p.name,
            mark(c.chat),
            mark(c.stream),
            pass(c.tools),
            pass(c.vision),
            mark(c.embeddings),
            p.auth_kind.replace(", ", "; ")
        ));
    }
    out
}
