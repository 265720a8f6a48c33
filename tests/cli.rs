//! The `lightport` binary as a user runs it: `check`, `schema`, and the house rules that keep
//! provider knowledge out of the engine.

use std::path::Path;
use std::process::Command;

fn lightport(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lightport"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_passes_on_the_shipped_mappings_and_runs_their_vectors() {
    let (code, stdout, stderr) = lightport(&["check", "mappings"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("all passed"), "{stderr}");
    let ran: usize =
        stderr.split("ran ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(ran >= 40, "{stderr}");
}

#[test]
fn check_warns_on_a_request_match_that_could_lose_a_value_and_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lossy.yaml");
    std::fs::write(
        &file,
        "name: Lossy\nbase_url: https://example.test\nchat:\n  path: /chat\n  request:\n    model: $.model\n    parts:\n      $each: $.messages\n      map:\n        $match: $.role\n        cases: { user: $.content }\n  response: $\n",
    )
    .unwrap();
    let (code, stdout, stderr) = lightport(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "a warning does not fail the check: {stdout}{stderr}");
    let line = format!("{}:9: warning: this $match of the request has no `default` and no `unmatched`", file.display());
    assert!(stdout.contains(&line), "{stdout}");
    assert!(stderr.contains("1 warning(s)"), "{stderr}");
    // Declaring what happens to the rest silences it.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("cases: { user: $.content }", "cases: { user: $.content }\n        unmatched: refuse"),
    )
    .unwrap();
    let (code, stdout, stderr) = lightport(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("warning") && !stderr.contains("warning"), "{stdout}{stderr}");
}

#[test]
fn check_reports_every_problem_as_file_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "name: Broken\nbase_url: https://example.test\nchat:\n  path: /chat\n  request:\n    model: $.model\n    text: { $joinn: $.messages, sep: \" \" }\n  response:\n    id: $nosuchvar.id\n  params: { seed: sometimes }\n",
    )
    .unwrap();
    let (code, stdout, _) = lightport(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let shown = file.display().to_string();
    assert!(stdout.contains(&format!("{shown}:7: unknown operation '$joinn' (did you mean '$join'?)")), "{stdout}");
    assert!(stdout.contains(&format!("{shown}:9: unknown variable '$nosuchvar'")), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with(&format!("{shown}:10: "))),
        "the bad param policy is reported too: {stdout}"
    );
}

#[test]
fn check_reports_yaml_syntax_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("syntax.yaml");
    std::fs::write(&file, "name: X\nchat:\n  path: /a\n  request: [unclosed\n").unwrap();
    let (code, stdout, _) = lightport(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.starts_with(&format!("{}:", file.display())) && stdout.contains("not valid YAML"), "{stdout}");
}

#[test]
fn check_runs_a_users_own_vectors_beside_their_mapping() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("echo.yaml"),
        "extends: openai\nname: Echo host\nbase_url: https://echo.test/v1\nmodels: { match: [\"echo-*\"] }\n",
    )
    .unwrap();
    let case = dir.path().join("vectors").join("echo").join("basic");
    std::fs::create_dir_all(&case).unwrap();
    let req = r#"{"model": "echo-1", "messages": [{"role": "user", "content": "hi"}]}"#;
    std::fs::write(case.join("request.json"), req).unwrap();
    std::fs::write(
        case.join("upstream_request.json"),
        format!(r#"{{"method": "POST", "path": "/chat/completions", "body": {req}}}"#),
    )
    .unwrap();
    std::fs::write(case.join("upstream_response.json"), r#"{"status": 200, "body": {"id": "x"}}"#).unwrap();
    std::fs::write(case.join("response.json"), r#"{"status": 200, "body": {"id": "x"}}"#).unwrap();
    let (code, stdout, stderr) = lightport(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("ran 1 vector"), "{stderr}");
    // A wrong expectation fails, naming the case and the place.
    std::fs::write(case.join("response.json"), r#"{"status": 200, "body": {"id": "y"}}"#).unwrap();
    let (code, stdout, _) = lightport(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("basic: response differs at /body/id"), "{stdout}");
}

#[test]
fn committed_schemas_are_current() {
    for (args, file) in [(&["schema"][..], "mapping.schema.json"), (&["schema", "--config"][..], "config.schema.json")]
    {
        let (code, stdout, _) = lightport(args);
        assert_eq!(code, 0);
        let committed =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(file)).unwrap();
        let a: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let b: serde_json::Value = serde_json::from_str(&committed).unwrap();
        assert!(a == b, "schemas/{file} is stale: run `cargo run -- {} > schemas/{file}`", args.join(" "));
    }
}

#[test]
fn every_mapping_names_the_schema_on_its_first_line() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/mapping.schema.json"),
            "{} must start with the schema comment",
            path.display()
        );
    }
}

/// `src/` knows no provider but the canonical OpenAI format: every quirk lives in mappings/.
#[test]
fn src_names_no_provider() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ids: Vec<String> = std::fs::read_dir(root.join("mappings"))
        .unwrap()
        .filter_map(|e| e.ok()?.path().file_stem().map(|s| s.to_string_lossy().to_lowercase()))
        .filter(|id| id != "openai" && !id.starts_with("openai-"))
        .collect();
    assert!(ids.contains(&"anthropic".to_string()));
    let mut files = vec![root.join("src")];
    let mut hits = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap_or_default().to_lowercase();
        // Word boundaries as `grep -w` sees them: a letter, digit or `_` may not touch the id.
        let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        for (n, line) in text.lines().enumerate() {
            for id in &ids {
                let found = line.match_indices(id.as_str()).any(|(at, _)| {
                    !is_word(line[..at].chars().next_back()) && !is_word(line[at + id.len()..].chars().next())
                });
                if found {
                    hits.push(format!("{}:{}: {id}", p.display(), n + 1));
                }
            }
        }
    }
    assert!(hits.is_empty(), "provider names in src/:\n{}", hits.join("\n"));
}

#[test]
fn readme_provider_table_is_current() {
    let (code, table, stderr) = lightport(&["providers"]);
    assert_eq!(code, 0, "{stderr}");
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("<!-- providers:start -->\n")
        .nth(1)
        .and_then(|s| s.split("<!-- providers:end -->").next())
        .unwrap();
    assert_eq!(section, table, "README's provider table is stale: run `cargo run -- providers --write README.md`");
    assert!(table.lines().count() >= 4);
}

#[test]
fn ci_runs_the_readme_test_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    let command = readme.split("Run the tests:\n\n```sh\n").nth(1).and_then(|s| s.lines().next()).unwrap().trim();
    assert_eq!(command, "cargo test --locked");
    assert!(ci.lines().any(|l| l.trim() == command), ".ci/run must run `{command}`");
}

#[test]
fn docs_operation_reference_is_current() {
    let (code, table, stderr) = lightport(&["operations"]);
    assert_eq!(code, 0, "{stderr}");
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mappings.md")).unwrap();
    let section = docs
        .split("<!-- operations:start -->\n")
        .nth(1)
        .and_then(|s| s.split("<!-- operations:end -->").next())
        .unwrap();
    assert_eq!(
        section, table,
        "docs/mappings.md's operation table is stale: run `cargo run -- operations --write docs/mappings.md`"
    );
    for op in ["$each", "$update", "$use", "$rename"] {
        assert!(table.contains(&format!("`{{{op}:")), "{op} is missing from the reference");
    }
}

/// The translation core is a library without the server's crates: what an application, a
/// serverless function or a WebAssembly host embeds.
#[test]
fn the_core_library_pulls_no_server_crates() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "--no-default-features", "-e", "normal", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("serde_json"), "{tree}");
    for server_crate in ["tokio", "axum", "hyper", "reqwest", "notify", "mimalloc"] {
        assert!(
            !tree.lines().any(|l| l.split_whitespace().next() == Some(server_crate)),
            "{server_crate} is in the core library's dependency tree"
        );
    }
}

#[test]
fn check_validates_a_config_file_with_file_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "targets:\n  a: { provider: openai, model: gpt-4o }\nroutes:\n  - name: r\n    targets: [a]\n",
    )
    .unwrap();
    let (code, stdout, stderr) = lightport(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("and a config file"), "{stderr}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "targets:\n  a: { provider: openai }\nroutes:\n  - name: r\n    targets: [a, b]\n    retries: { attempts: many }\n",
    )
    .unwrap();
    let (code, stdout, _) = lightport(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let shown = bad.display().to_string();
    assert!(stdout.contains(&format!("{shown}:6: ")), "{stdout}");
}

#[test]
fn the_example_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (code, stdout, stderr) = lightport(&["check", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {stdout}{stderr}", path.display());
        checked += 1;
    }
    assert!(checked >= 4);
}
