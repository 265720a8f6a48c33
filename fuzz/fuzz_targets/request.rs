//! Arbitrary bytes through `lightport::vectors::fuzz::request` (see its documentation).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<lightport::Engine> =
    LazyLock::new(|| lightport::vectors::engine_for_vectors(&lightport::builtin_sources()).0);

fuzz_target!(|data: &[u8]| lightport::vectors::fuzz::request(&ENGINE, data));
