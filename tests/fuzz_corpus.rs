//! The fuzz targets' entry points (`lightport::vectors::fuzz`) on their seed corpus
//! (`fuzz/corpus`, made from the golden vectors) and on deterministic mutations of it: the
//! short, repeatable run of the fuzzers that `cargo test` does. The long runs are
//! `cargo +nightly fuzz run <target>` in `fuzz/` (see README).

use std::path::Path;

use lightport::builtin_sources;
use lightport::vectors::{engine_for_vectors, fuzz};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// A copy of `seed` with a few bytes flipped, cut, repeated or inserted.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        if v.len() < 3 {
            break;
        }
        let at = 2 + rng.below(v.len() - 2);
        match rng.below(4) {
            0 => v[at] = rng.next() as u8,
            1 => v.truncate(at),
            2 => {
                let end = (at + rng.below(64)).min(v.len());
                let piece = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
            _ => v.insert(at, b"{}[]\",:\n\\"[rng.below(9)]),
        }
    }
    v
}

#[test]
fn the_fuzz_targets_end_cleanly_on_their_corpus_and_its_mutations() {
    let (engine, errors) = engine_for_vectors(&builtin_sources());
    assert!(errors.is_empty());
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut rng = Rng(0xC0FFEE);
    let mut runs = 0;
    for (target, run) in [
        ("stream", fuzz::stream as fn(&lightport::Engine, &[u8])),
        ("request", fuzz::request),
        ("response", fuzz::response),
    ] {
        let mut seeds: Vec<_> = std::fs::read_dir(corpus.join(target)).unwrap().map(|e| e.unwrap().path()).collect();
        seeds.sort();
        assert!(seeds.len() >= 20, "{target}: {} seeds", seeds.len());
        for seed in seeds {
            let bytes = std::fs::read(&seed).unwrap();
            run(&engine, &bytes);
            for _ in 0..8 {
                run(&engine, &mutate(&bytes, &mut rng));
                runs += 1;
            }
        }
    }
    assert!(runs > 2_000, "{runs}");
}
