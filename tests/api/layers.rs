//! The crate's layers hold: every top-level module is in the layer map of `src/lib.rs`, and every
//! `crate::…` reference in `src/` points to a module on a lower line of that map. Test code in a
//! file's own `mod tests` is left out; test files of their own (`tests.rs`) count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer map: each top-level module and its line, counted from the bottom (0 = leaves).
fn layer_map(lib: &str) -> BTreeMap<String, usize> {
    let doc: Vec<&str> = lib.lines().filter_map(|line| line.strip_prefix("//!")).map(str::trim_start).collect();
    let start = doc.iter().position(|line| *line == "# Layers").expect("src/lib.rs has a `# Layers` section");
    let open = start + doc[start..].iter().position(|line| *line == "```text").expect("the layer map is a ```text block");
    let close = open + 1 + doc[open + 1..].iter().position(|line| *line == "```").expect("the layer map block is closed");
    let lines = &doc[open + 1..close];
    let mut map = BTreeMap::new();
    for (index, line) in lines.iter().enumerate() {
        let layer = lines.len() - 1 - index;
        let names = line.split("  ").next().unwrap_or_default();
        for name in names.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            assert!(map.insert(name.to_string(), layer).is_none(), "{name} is on two lines of the layer map");
        }
    }
    map
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// The code of a file before its `#[cfg(test)] mod tests`.
fn without_unit_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let start = from + at;
        let rest = text[start + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod tests") {
            return &text[..start];
        }
        from = start + 1;
    }
    text
}

fn identifier(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules `code` names through `crate::x` or `use crate::{x, y::z}`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (index, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        modules.insert(identifier(&group[index..]).to_string());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = identifier(rest);
            if !name.is_empty() {
                modules.insert(name.to_string());
            }
        }
    }
    modules
}

#[test]
fn every_import_points_to_a_lower_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let map = layer_map(&std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs"));
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();

    let mut modules = BTreeSet::new();
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("inside src/");
        let first = relative.components().next().expect("a path").as_os_str().to_string_lossy().into_owned();
        let module = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        modules.insert(module.clone());
        let Some(&layer) = map.get(&module) else { continue };
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for target in referenced_modules(without_unit_tests(&text)) {
            if target == module {
                continue;
            }
            match map.get(&target) {
                Some(&target_layer) if target_layer < layer => {}
                Some(_) => upward.push(format!("{} -> {target}", relative.display())),
                None => {}
            }
        }
    }

    let unmapped: Vec<_> = modules.iter().filter(|module| !map.contains_key(*module)).collect();
    assert!(unmapped.is_empty(), "top-level modules missing from the layer map in src/lib.rs: {unmapped:?}");
    let stale: Vec<_> = map.keys().filter(|name| !modules.contains(*name)).collect();
    assert!(stale.is_empty(), "the layer map in src/lib.rs names modules that do not exist: {stale:?}");
    assert!(upward.is_empty(), "imports that do not point to a lower layer (see src/lib.rs):\n{}", upward.join("\n"));
}

#[test]
fn the_reference_scanner_sees_paths_and_groups() {
    let code = "use crate::jobs::Job;\nuse crate::{api::state::AppState, store, error::{ApiError, Problem}};\n\
                let x = $crate::ignored; mycrate::ignored; crate::services::Services::build(&c);";
    let found: Vec<_> = referenced_modules(code).into_iter().collect();
    assert_eq!(found, ["api", "error", "jobs", "services", "store"]);
    assert_eq!(without_unit_tests("a\n#[cfg(test)]\nmod tests { crate::api }"), "a\n");
}
