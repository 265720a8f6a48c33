//! Builds the default mapping set into the binary: every `mappings/*.yaml`, by file name.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=mappings");
    let mut files: Vec<_> = fs::read_dir("mappings")
        .map(|rd| {
            rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml")).collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut code = String::from("pub const BUILTIN: &[(&str, &str)] = &[\n");
    for f in files {
        let id = f.file_stem().unwrap().to_string_lossy().to_string();
        let abs = fs::canonicalize(&f).unwrap();
        code.push_str(&format!("    ({id:?}, include_str!({:?})),\n", abs.to_string_lossy()));
        println!("cargo:rerun-if-changed={}", f.display());
    }
    code.push_str("];\n");
    fs::write(Path::new(&env::var("OUT_DIR").unwrap()).join("builtin_mappings.rs"), code).unwrap();
}
