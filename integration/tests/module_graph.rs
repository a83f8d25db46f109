//! No two modules of a production crate import each other (docs/ARCHITECTURE.md, "Crates and
//! the direction of dependencies"): a pair that does is one concept cut in two, or a missing
//! third module. This reads the sources of the crates in [`CHECKED`] (no build, no network),
//! takes every path that names a module of the same crate (`crate::…`, `super::…`, `self::…`,
//! a child module's name, and modules re-exported under another name, such as the daemon's
//! `crate::logging`), and fails on every pair of modules with paths into each other. Test
//! modules (`#[cfg(test)]` to the end of a file) and binaries (`main.rs`, `src/bin/`) are left
//! out, and so are the paths of the crate root: `lib.rs` is the crate's table of contents,
//! which declares and re-exports every module (and, in `policies`, holds the table of policies
//! that `plugin` reads). Run alone: `cargo test -p integration --test module_graph`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose modules must not import each other (paths from the workspace root).
const CHECKED: [&str; 4] = ["daemon", "policies", "config", "netlink-actor"];

/// A module path inside its crate: `[]` is the crate root, `["actors", "registry"]` is
/// `crate::actors::registry`.
type Module = Vec<String>;

/// The modules of one crate and the text of each (production code only).
struct Crate {
    files: BTreeMap<Module, String>,
}

impl Crate {
    /// Every module file under `src` except binaries.
    fn read(src: &Path) -> Crate {
        let mut files = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path != src.join("bin") {
                        stack.push(path);
                    }
                    continue;
                }
                if path.extension().is_some_and(|e| e == "rs") && path != src.join("main.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    files.insert(module_of(src, &path), production(&text));
                }
            }
        }
        Crate { files }
    }

    fn from_texts(texts: &[(&str, &str)]) -> Crate {
        let files = texts
            .iter()
            .map(|(m, t)| (split(m), production(t)))
            .collect();
        Crate { files }
    }

    /// Every (from, to) pair of distinct modules where `from` names `to`, `from` not the root.
    fn edges(&self) -> BTreeSet<(Module, Module)> {
        // First the modules re-exported under a name of their own (`pub use process::exit;`),
        // then every path, resolved through them.
        let mut aliases = BTreeMap::new();
        for (from, text) in &self.files {
            for (path, name) in use_paths(text) {
                if let Some(to) = self.resolve(from, &path, &BTreeMap::new(), true) {
                    aliases.insert((from.clone(), name), to);
                }
            }
        }
        let mut out = BTreeSet::new();
        for (from, text) in self.files.iter().filter(|(m, _)| !m.is_empty()) {
            for path in paths(text) {
                if let Some(to) = self.resolve(from, &path, &aliases, false) {
                    if &to != from {
                        out.insert((from.clone(), to));
                    }
                }
            }
        }
        out
    }

    /// The module of this crate that `path` (written in module `at`) leads into: the longest
    /// prefix that is a module. `None` for paths into other crates. With `whole`, only a path
    /// that is exactly a module counts.
    fn resolve(
        &self,
        at: &Module,
        path: &[String],
        aliases: &BTreeMap<(Module, String), Module>,
        whole: bool,
    ) -> Option<Module> {
        let mut segs = path.iter().peekable();
        let mut cur: Module = match segs.peek().map(|s| s.as_str()) {
            Some("crate") => {
                segs.next();
                Vec::new()
            }
            Some("super") | Some("self") => {
                let mut m = at.clone();
                while let Some(s) = segs.peek().map(|s| s.as_str()) {
                    match s {
                        "super" => m.pop(),
                        "self" => None,
                        _ => break,
                    };
                    segs.next();
                }
                m
            }
            Some(first) => {
                let mut child = at.clone();
                child.push(first.to_string());
                if !self.files.contains_key(&child) {
                    return None;
                }
                at.clone()
            }
            None => return None,
        };
        let start_len = path.len() - segs.len();
        let mut used = start_len;
        for s in segs {
            let mut next = cur.clone();
            next.push(s.clone());
            if self.files.contains_key(&next) {
                cur = next;
            } else if let Some(to) = aliases.get(&(cur.clone(), s.clone())) {
                cur = to.clone();
            } else {
                break;
            }
            used += 1;
        }
        if whole && used != path.len() {
            return None;
        }
        (used > 0 || start_len > 0).then_some(cur)
    }
}

/// The text before the first `#[cfg(test)]`, without `//` comments.
fn production(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        out.push_str(line.split("//").next().unwrap_or(""));
        out.push('\n');
    }
    out
}

fn split(m: &str) -> Module {
    m.split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut m: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(m.last().map(|s| s.as_str()), Some("mod") | Some("lib")) {
        m.pop();
    }
    m
}

/// A tiny tokenizer: identifiers, `::` and the punctuation that shapes a `use` tree.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(b[start..i].iter().collect());
            continue;
        }
        if c == ':' && b.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
            continue;
        }
        if c == '\'' {
            // A char literal ('x', '"', '\n') is skipped; a lifetime's quote alone.
            if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else if b.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else {
                i += 1;
            }
            continue;
        }
        if c == '"' {
            // Skip string literals (escaped quotes included).
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
        i += 1;
    }
    out
}

/// Every path in the text, `use` trees expanded (`a::{b, c::d}` is `a::b` and `a::c::d`).
fn paths(text: &str) -> Vec<Vec<String>> {
    let t = tokens(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let starts = is_ident(&t[i]) && (i == 0 || t[i - 1] != "::");
        if starts && t.get(i + 1).map(|s| s.as_str()) == Some("::") {
            let (trees, next) = tree(&t, i);
            out.extend(trees.into_iter().map(|(p, _)| p));
            i = next;
        } else {
            i += 1;
        }
    }
    out
}

/// The paths of `use` statements, each with the name it is known by here (`as` or its last
/// segment).
fn use_paths(text: &str) -> Vec<(Vec<String>, String)> {
    let t = tokens(text);
    let mut out = Vec::new();
    for (i, w) in t.iter().enumerate() {
        if w == "use" && t.get(i + 1).is_some_and(|s| is_ident(s)) {
            out.extend(tree(&t, i + 1).0);
        }
    }
    out
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Parse a path or `use` tree starting at token `i`; the expanded paths with their local
/// names, and the index after it.
fn tree(t: &[String], mut i: usize) -> (Vec<(Vec<String>, String)>, usize) {
    let mut prefix = Vec::new();
    loop {
        match t.get(i).map(|s| s.as_str()) {
            Some("{") => {
                let mut out = Vec::new();
                i += 1;
                while i < t.len() && t[i] != "}" {
                    if t[i] == "," {
                        i += 1;
                        continue;
                    }
                    let (sub, next) = tree(t, i);
                    for (p, name) in sub {
                        let mut full = prefix.clone();
                        // `self` in a group is the prefix itself.
                        full.extend(p.into_iter().filter(|s| s != "self"));
                        let name = if name == "self" {
                            prefix.last().cloned().unwrap_or_default()
                        } else {
                            name
                        };
                        out.push((full, name));
                    }
                    i = next.max(i + 1);
                }
                return (out, i + 1);
            }
            Some("*") => {
                let name = prefix.last().cloned().unwrap_or_default();
                return (vec![(prefix, name)], i + 1);
            }
            Some(s) if is_ident(s) => {
                prefix.push(s.to_string());
                i += 1;
                if t.get(i).map(|s| s.as_str()) == Some("::") {
                    i += 1;
                    continue;
                }
                let mut name = prefix.last().cloned().unwrap_or_default();
                if t.get(i).map(|s| s.as_str()) == Some("as") {
                    if let Some(alias) = t.get(i + 1) {
                        name = alias.clone();
                    }
                    i += 2;
                }
                return (vec![(prefix, name)], i);
            }
            _ => {
                let name = prefix.last().cloned().unwrap_or_default();
                return (vec![(prefix, name)], i);
            }
        }
    }
}

/// The pairs of modules that import each other, as `a <-> b` lines.
fn mutual(c: &Crate) -> Vec<String> {
    let edges = c.edges();
    edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| format!("crate::{} <-> crate::{}", a.join("::"), b.join("::")))
        .collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn no_two_modules_of_a_production_crate_import_each_other() {
    let mut found = Vec::new();
    for name in CHECKED {
        let c = Crate::read(&workspace().join(name).join("src"));
        assert!(
            c.files.len() > 5 && !c.edges().is_empty(),
            "{name}: the sources were not read"
        );
        found.extend(mutual(&c).into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_every_way_of_naming_a_module() {
    let c = Crate::from_texts(&[
        (
            "",
            "mod a; mod b; mod c; mod d; pub use d::e as renamed; use a::X;",
        ),
        (
            "a",
            "use crate::{b::{self, Thing}, c};\nfn f() { crate::d::e::g(); }",
        ),
        ("b", "use super::a::X;"),
        (
            "c",
            "fn g() { let q = '\"'; let s = \"crate::a::Y\"; let r = '\"'; } // crate::a::Z",
        ),
        ("d", "pub mod e; pub use e::V;"),
        (
            "d::e",
            "use crate::renamed::W; // an alias\n#[cfg(test)]\nmod tests { use crate::a; }",
        ),
    ]);
    let edges = c.edges();
    let e = |a: &str, b: &str| edges.contains(&(split(a), split(b)));
    assert!(e("a", "b") && e("a", "c") && e("a", "d::e") && e("b", "a"));
    assert!(e("d", "d::e"), "a re-export is an import");
    assert!(
        !e("", "a") && !e("", "d::e"),
        "the root's paths are not counted"
    );
    assert!(!e("c", "a"), "strings and comments are not imports");
    assert!(!e("d::e", "a"), "test modules are left out");
    assert!(!e("d::e", ""), "an alias resolves to its module: {edges:?}");
    assert_eq!(mutual(&c), ["crate::a <-> crate::b"]);
}
