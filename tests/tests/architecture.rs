//! Architecture invariants, checked by reading the sources (ADR 0008).
//!
//! The library's layers follow the data: wire events → pure core → ports → services →
//! handlers and the command line. Every `crate::`, `super::` and `self::` path in
//! `shared/src` (in `use` declarations and inline) is resolved to the module file it names, and
//! the resulting graph is held against the layer rules below and checked for cycles.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
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

/// A module's path below the crate root: `core/ledger/fold.rs` → `core::ledger::fold`,
/// `core/ledger/mod.rs` → `core::ledger`, `lib.rs` → the root (empty).
type Module = Vec<String>;

fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// Source text with comments, string and character literals blanked out, so neither a comment
/// nor a string can add or hide a path.
fn strip(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|&c| c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let start = 1 + hashes + 1;
            let end = rest[start..]
                .find(&close)
                .map_or(rest.len(), |e| start + e + close.len());
            out.push_str("\"\"");
            i += end;
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = (j + 1).min(bytes.len());
        } else if bytes[i] == b'\''
            && (rest.len() > 2 && (rest.as_bytes()[2] == b'\'' || rest.as_bytes()[1] == b'\\'))
        {
            // A character literal ('x', '\n'); a lifetime ('a) is left alone.
            let end = rest[1..].find('\'').map_or(rest.len(), |e| e + 2);
            out.push_str("' '");
            i += end;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Every path a `use` tree names, its braces expanded: `a::{b, c::{d, e}}` → `a::b`,
/// `a::c::d`, `a::c::e` (`self` inside braces is the prefix itself).
fn expand(tree: &str) -> Vec<String> {
    // `a as b` keeps `a`: the renaming marked, then every space dropped.
    let tree: String = tree
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" as ", "@")
        .split_whitespace()
        .collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.split('@').next().unwrap_or_default().to_owned()];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(|item| {
            expand(item).into_iter().map(move |path| {
                if path == "self" {
                    prefix.to_owned()
                } else {
                    format!("{prefix}::{path}")
                }
            })
        })
        .collect()
}

/// The paths a source names that start at `crate`, `super` or `self`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    // `use` declarations, braces and all.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let after = &rest[at + 4..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = after.find(';') else { break };
        let tree = after[..end].trim();
        if ["crate", "super", "self"]
            .iter()
            .any(|root| tree.starts_with(&format!("{root}::")))
        {
            paths.extend(expand(tree));
        }
    }
    // Inline paths: `crate::a::b::C`, `super::x`.
    let bytes = code.as_bytes();
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(found) = code[from..].find(root) {
            let start = from + found;
            from = start + root.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let mut end = from;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
            {
                end += 1;
            }
            paths.push(code[start..end].trim_end_matches(':').to_owned());
        }
    }
    paths
}

/// The module file a path names: its longest prefix that is a module of the crate.
fn resolve(from: &[String], path: &str, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let mut module: Module = match segments.next()? {
        "crate" => Vec::new(),
        "self" => from.to_vec(),
        "super" => from[..from.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    for segment in segments {
        if segment == "super" {
            module.pop();
            continue;
        }
        let mut deeper = module.clone();
        deeper.push(segment.to_owned());
        if modules.contains(&deeper) {
            module = deeper;
        } else {
            break;
        }
    }
    Some(module)
}

/// The import graph: each module and the modules it names.
fn graph(sources: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules: BTreeSet<Module> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, source)| {
            let targets = crate_paths(&strip(source))
                .iter()
                .filter_map(|path| resolve(module, path, &modules))
                .filter(|target| target != module && !target.is_empty())
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

/// The layer a module belongs to: its first segment.
fn layer(module: &[String]) -> &str {
    module.first().map_or("crate", String::as_str)
}

/// The layers each layer may import (itself always). The crate root only declares them.
const RULES: [(&str, &[&str]); 10] = [
    (
        "crate",
        &[
            "core", "events", "metrics", "ports", "app", "adapters", "handlers", "config",
            "analysis",
        ],
    ),
    ("core", &[]),
    ("events", &["core"]),
    ("metrics", &["core"]),
    ("ports", &["core", "metrics"]),
    ("app", &["core", "events", "metrics", "ports"]),
    ("adapters", &["core", "events", "metrics", "ports"]),
    ("handlers", &["core", "events", "metrics", "ports", "app"]),
    ("config", &["core", "metrics", "adapters", "app"]),
    ("analysis", &["core", "metrics", "ports"]),
];

/// Every import that breaks a layer rule, as `from -> to`.
fn layer_violations(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut violations = Vec::new();
    for (from, targets) in graph {
        let Some((_, allowed)) = RULES.iter().find(|(name, _)| *name == layer(from)) else {
            violations.push(format!("{} is in no layer", name(from)));
            continue;
        };
        for to in targets {
            let to_layer = layer(to);
            if to_layer != layer(from) && !allowed.contains(&to_layer) {
                violations.push(format!("{} -> {}", name(from), name(to)));
            }
        }
    }
    violations
}

/// One cycle of the graph, if it has any.
fn a_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<String>> {
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<String>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[start..].iter().map(|m| name(m)).collect();
                    cycle.push(name(next));
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

fn library_sources() -> BTreeMap<Module, String> {
    let root = workspace().join("shared/src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .map(|file| {
            let module = module_of(file.strip_prefix(&root).unwrap());
            (module, std::fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// Each layer imports only what is below it: the core only itself; events, metrics and ports
/// only the core (ports also metrics); services and adapters never each other, adapters never
/// handlers; handlers only services and what is below them.
#[test]
fn every_import_of_the_library_follows_the_layers() {
    let sources = library_sources();
    assert!(sources.len() >= 40, "library modules: {}", sources.len());
    let graph = graph(&sources);
    let violations = layer_violations(&graph);
    assert!(
        violations.is_empty(),
        "imports against the layers (ADR 0008):\n{}",
        violations.join("\n")
    );
}

/// No two modules of the library import each other, however indirectly.
#[test]
fn the_library_import_graph_has_no_cycle() {
    let graph = graph(&library_sources());
    if let Some(cycle) = a_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

/// The services and the handlers are written against ports: no AWS SDK, no adapter.
#[test]
fn services_and_handlers_name_no_sdk_and_no_adapter() {
    for (module, source) in library_sources() {
        if !matches!(layer(&module), "app" | "handlers") {
            continue;
        }
        let code = strip(&source);
        for word in ["aws_sdk_", "aws_config", "rusqlite", "adapters::"] {
            assert!(
                !code.contains(word),
                "{} names `{word}`: services and handlers use ports",
                name(&module)
            );
        }
    }
}

/// The checker itself: a forbidden import, a cycle and a path hidden in braces are all found;
/// a path in a comment or a string is not an import.
#[test]
fn the_checker_finds_a_forbidden_import_and_a_cycle() {
    let module = |path: &str| -> Module { path.split("::").map(str::to_owned).collect() };
    let sources = BTreeMap::from([
        (
            module("core::a"),
            "use crate::{core::b, adapters::{x::Y, self}};\n// crate::app::z\nconst S: &str = \"crate::handlers\";".to_owned(),
        ),
        (module("core"), String::new()),
        (module("core::b"), "fn f() { super::a::g(); }".to_owned()),
        (module("adapters"), String::new()),
        (module("adapters::x"), String::new()),
        (module("app"), String::new()),
        (module("handlers"), String::new()),
    ]);
    let graph = graph(&sources);
    assert_eq!(
        graph[&module("core::a")],
        BTreeSet::from([module("core::b"), module("adapters::x"), module("adapters")])
    );
    assert_eq!(
        layer_violations(&graph),
        vec!["core::a -> adapters", "core::a -> adapters::x"]
    );
    assert_eq!(
        a_cycle(&graph),
        Some(vec![
            "core::a".to_owned(),
            "core::b".to_owned(),
            "core::a".to_owned()
        ])
    );
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

/// The functions' `main`s only wire adapters in: what they do lives in the library.
#[test]
fn every_function_main_stays_thin() {
    let functions = workspace().join("functions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&functions).unwrap() {
        let main = entry.unwrap().path().join("src/main.rs");
        let lines = std::fs::read_to_string(&main).unwrap().lines().count();
        assert!(lines < 60, "{}: {lines} lines", main.display());
        seen += 1;
    }
    assert_eq!(seen, 4);
}

/// The Lambda builds carry only the SDKs the functions call: the command line's own (Price
/// List, S3, CloudFormation, Cost Explorer, CloudWatch, EventBridge, SQS) stay out of them.
#[test]
fn the_functions_build_without_the_command_lines_sdks() {
    for function in ["collector", "ticker", "enforcer", "admitter"] {
        let manifest =
            std::fs::read_to_string(workspace().join(format!("functions/{function}/Cargo.toml")))
                .unwrap();
        for sdk in [
            "aws-sdk-pricing",
            "aws-sdk-s3",
            "aws-sdk-cloudformation",
            "aws-sdk-costexplorer",
            "aws-sdk-cloudwatch",
            "aws-sdk-eventbridge",
            "aws-sdk-sqs",
        ] {
            assert!(!manifest.contains(sdk), "{function} depends on {sdk}");
        }
    }
    let library = std::fs::read_to_string(workspace().join("shared/Cargo.toml")).unwrap();
    assert!(
        !library.contains("aws-sdk-pricing") && !library.contains("parquet"),
        "the library carries a CLI-only dependency"
    );
}

/// Every workspace member takes the workspace's lints.
#[test]
fn every_member_inherits_the_workspace_lints() {
    let root = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let members = root
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap();
    let members: Vec<&str> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    assert_eq!(members.len(), 7, "{members:?}");
    for member in members {
        let manifest =
            std::fs::read_to_string(workspace().join(member).join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{member}/Cargo.toml does not inherit the workspace lints"
        );
    }
}

/// Every crate forbids `unsafe`.
#[test]
fn every_crate_root_forbids_unsafe_code() {
    let mut roots = vec![
        "shared/src/lib.rs".to_owned(),
        "cli/src/main.rs".to_owned(),
        "tests/src/lib.rs".to_owned(),
    ];
    roots.extend(
        ["collector", "ticker", "enforcer"]
            .map(|function| format!("functions/{function}/src/main.rs")),
    );
    for root in roots {
        let text = std::fs::read_to_string(workspace().join(&root)).unwrap();
        assert!(
            text.contains("#![forbid(unsafe_code)]"),
            "{root} lacks #![forbid(unsafe_code)]"
        );
    }
}

/// Money is never a binary float: no `f64`/`f32` anywhere in the library.
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
