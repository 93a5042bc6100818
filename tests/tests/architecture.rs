//! Architecture invariants, checked by reading the sources.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The code of a file without its comments (which may name what the code must not use).
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The core is pure: no IO, no clock, no AWS or runtime crates, no wire formats. Time comes
/// in as an argument; storage and formats live in adapters.
#[test]
fn the_core_names_no_io_clock_or_aws_crate() {
    const FORBIDDEN: [&str; 12] = [
        "aws_sdk_",
        "aws_lambda_events",
        "lambda_runtime",
        "tokio",
        "rusqlite",
        "serde_json",
        "std::fs",
        "std::net",
        "std::io",
        "std::env",
        "Utc::now",
        "SystemTime",
    ];
    let mut files = Vec::new();
    rust_files(&workspace().join("shared/src/core"), &mut files);
    assert!(files.len() >= 7, "core files: {files:?}");
    for file in files {
        let text = code_of(&file);
        for word in FORBIDDEN {
            assert!(
                !text.contains(word),
                "{} names `{word}`: the core must stay pure",
                file.display()
            );
        }
    }
}

/// Every crate forbids `unsafe`.
#[test]
fn every_crate_root_forbids_unsafe_code() {
    for root in ["shared/src/lib.rs", "cli/src/main.rs", "tests/src/lib.rs"] {
        let text = std::fs::read_to_string(workspace().join(root)).unwrap();
        assert!(
            text.contains("#![forbid(unsafe_code)]"),
            "{root} lacks #![forbid(unsafe_code)]"
        );
    }
}

/// Money is never a binary float: no `f32`/`f64` anywhere in the library.
#[test]
fn the_library_has_no_floating_point() {
    let mut files = Vec::new();
    rust_files(&workspace().join("shared/src"), &mut files);
    for file in files {
        let text = code_of(&file);
        for word in ["f64", "f32"] {
            assert!(!text.contains(word), "{} uses `{word}`", file.display());
        }
    }
}
