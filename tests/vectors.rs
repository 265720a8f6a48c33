//! Every golden vector of every built-in mapping, run through the same code as `lightport check`.

mod common;

use lightport::builtin_sources;
use lightport::vectors::{engine_for_vectors, run_all};

#[test]
fn every_golden_vector_passes() {
    let (engine, errors) = engine_for_vectors(&builtin_sources());
    assert!(
        errors.is_empty(),
        "mappings failed to load:\n{}",
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
    );
    let (ran, failures) = run_all(engine.providers(), &common::fixtures());
    assert!(
        failures.is_empty(),
        "{} of {ran} vectors failed:\n{}",
        failures.len(),
        failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n")
    );
    assert!(ran >= 40, "expected the full vector set, ran {ran}");
}

#[test]
fn every_provider_with_a_mapping_has_vectors() {
    let (engine, _) = engine_for_vectors(&builtin_sources());
    for src in engine.providers() {
        let dir = common::fixtures().join(src.id());
        assert!(
            !lightport::vectors::cases(&dir).is_empty(),
            "mappings/{}.yaml has no vectors in {}",
            src.id(),
            dir.display()
        );
    }
}

#[test]
fn expected_outputs_match_openai_schemas() {
    let schemas = common::Schemas::load();
    let mut checked = 0;
    for src in builtin_sources() {
        for case in lightport::vectors::cases(&common::fixtures().join(&src.id)) {
            let expected = common::read_json(&case.join("response.json"));
            let request = common::read_json(&case.join("request.json"));
            if request.get("messages").is_none() {
                continue; // embeddings
            }
            if let Some(chunks) = expected.get("chunks").and_then(|c| c.as_array()) {
                schemas.stream(chunks);
            } else if expected["status"] == 200 {
                schemas.completion(&expected["body"]);
            } else {
                schemas.error(&expected["body"]);
            }
            checked += 1;
        }
    }
    assert!(checked >= 40);
}
