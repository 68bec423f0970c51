//! The layer graph of `src/`: no two source files use each other, directly or around a loop
//! (a module may use its parent). Read from the source text: every `crate::…` and `super::…`
//! path outside comments and unit tests, with `{…}` lists expanded and a parent's `pub use
//! child::Item` followed to the child that defines the item.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`hub::import`, `crate` for lib.rs) → source text, for the library's modules
/// (the programs, `src/main.rs` and `src/bin/`, are left out: they only use the library).
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("src/ reads") {
            let path = entry.expect("entry").path();
            let programs = [
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs"),
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin"),
            ];
            if programs.iter().any(|p| path == Path::new(p)) {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
                    .expect("under src")
                    .with_extension("");
                let name = rel.to_string_lossy().replace('/', "::");
                let name = if name == "lib" {
                    "crate".to_owned()
                } else {
                    name
                };
                let text = std::fs::read_to_string(&path).expect("source reads");
                out.insert(name, code_only(&text));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut out,
    );
    out
}

/// The text without `//` comments and without a trailing `#[cfg(test)] mod tests`.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            // Not inside a string such as "https://…".
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that follows `prefix` (`crate::` or `super::`), with a `{a, b::c}` list after
/// the last `::` expanded into one path each.
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
        let base = rest[..end].trim_end_matches(':').to_owned();
        if rest[end..].starts_with('{') && (end == 0 || rest[..end].ends_with("::")) {
            let close = rest[end..].find('}').map_or(rest.len(), |j| end + j);
            for item in rest[end + 1..close].split(',') {
                let item = item.split(" as ").next().unwrap_or("").trim();
                match item {
                    "" => {}
                    "self" => out.push(base.clone()),
                    _ if base.is_empty() => out.push(item.to_owned()),
                    _ => out.push(format!("{base}::{item}")),
                }
            }
        } else if !base.is_empty() {
            out.push(base);
        }
    }
    out
}

fn parent(module: &str) -> &str {
    module.rsplit_once("::").map_or("crate", |(p, _)| p)
}

fn join(module: &str, path: &str) -> String {
    if module == "crate" {
        path.to_owned()
    } else {
        format!("{module}::{path}")
    }
}

/// Which module each file uses (its own parent and ancestors left out).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    // `pub use child::{Item, …}` in a parent: Item is defined by the child.
    let mut reexports = BTreeMap::new();
    for (m, text) in &mods {
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line
                .strip_prefix("pub use ")
                .or_else(|| line.strip_prefix("pub(crate) use "))
            else {
                continue;
            };
            for path in paths_after(&format!(" crate::{rest}"), "crate::") {
                let path = path.trim_end_matches(';');
                if let Some((child, item)) = path.split_once("::")
                    && mods.contains_key(&join(m, child))
                {
                    reexports.insert(join(m, item), join(m, child));
                }
            }
        }
    }
    let target = |path: &str| -> Option<String> {
        if let Some(m) = reexports.get(path) {
            return Some(m.clone());
        }
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|c| mods.contains_key(c))
    };
    let mut edges = BTreeMap::new();
    for (m, text) in &mods {
        let mut uses = BTreeSet::new();
        let found = paths_after(text, "crate::").into_iter().chain(
            paths_after(text, "super::")
                .into_iter()
                .map(|p| join(parent(m), &p)),
        );
        for path in found {
            if let Some(t) = target(&path) {
                let ancestor = m.starts_with(&format!("{t}::")) || t == "crate";
                if t != *m && !ancestor {
                    uses.insert(t);
                }
            }
        }
        edges.insert(m.clone(), uses);
    }
    edges
}

/// Groups of modules that reach each other (Tarjan's strongly connected components).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in &self.edges[v] {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w.as_str()) {
                    let iw = self.index[w.as_str()];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    group.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_two_source_files_use_each_other() {
    let edges = graph();
    assert!(edges.len() > 50, "src/ was read: {} modules", edges.len());
    // The reader sees what it must: hub uses db, and a re-exported item leads to its file.
    assert!(edges["hub"].contains("db"), "{:?}", edges["hub"]);
    assert!(
        edges["server"].contains("ipfs::node"),
        "{:?}",
        edges["server"]
    );
    let found = cycles(&edges);
    let explain: Vec<String> = found
        .iter()
        .map(|group| {
            let inner: Vec<String> = group
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|b| group.contains(b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            inner.join(", ")
        })
        .collect();
    assert!(found.is_empty(), "import cycles: {explain:#?}");
}

#[test]
fn the_reader_finds_a_cycle_when_there_is_one() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges.entry(a.into()).or_default().insert(b.into());
        edges.entry(b.into()).or_default();
    }
    assert_eq!(cycles(&edges), [["a", "b", "c"]]);
    assert_eq!(
        paths_after("use crate::x::{y, z::w as v, self};", "crate::"),
        ["x::y", "x::z::w", "x"]
    );
    assert_eq!(
        paths_after("use super::{a, b::c};", "super::"),
        ["a", "b::c"]
    );
}

/// What the web layer may not touch: the database and the block store themselves, and the
/// operator's unchecked repo access. It reads repo content only through the hub's methods
/// that take a `Readable`/`Writable` repo (see `src/hub/access.rs` for the compile-time half).
const WEB_MAY_NOT: &[&str] = &[".db()", ".store()", "repo_for_operator", "rusqlite"];

/// Which of [`WEB_MAY_NOT`] each `web` module uses.
fn web_reaches_past_the_hub(modules: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
    modules
        .iter()
        .filter(|(name, _)| *name == "web" || name.starts_with("web::"))
        .flat_map(|(name, text)| {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            WEB_MAY_NOT
                .iter()
                .filter(move |bad| compact.contains(*bad))
                .map(move |bad| (name.clone(), *bad))
        })
        .collect()
}

#[test]
fn the_web_layer_reads_repos_only_through_the_hub() {
    let modules = modules();
    assert!(
        modules.keys().filter(|m| m.starts_with("web::")).count() > 5,
        "the web modules were read"
    );
    let found = web_reaches_past_the_hub(&modules);
    assert!(
        found.is_empty(),
        "web modules reach past the hub's typed access: {found:?}"
    );
    // And the check sees a line split the way rustfmt splits a chain.
    let planted = BTreeMap::from([(
        "web::planted".to_owned(),
        "let x = st\n    .hub\n    .db()\n    .read(|c| list(c));".to_owned(),
    )]);
    assert_eq!(
        web_reaches_past_the_hub(&planted),
        [("web::planted".to_owned(), ".db()")]
    );
}

#[test]
fn the_configuration_depends_only_on_the_pure_rules() {
    let edges = graph();
    let config: Vec<&String> = edges["config"].iter().collect();
    assert_eq!(config, ["rules"], "config uses {config:?}");
    assert!(
        edges["rules"].is_empty(),
        "rules must be a leaf: {:?}",
        edges["rules"]
    );
}

#[test]
fn the_crate_docs_name_every_top_level_module() {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs"))
        .expect("lib.rs reads");
    let docs: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let missing: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .filter(|m| !docs.contains(&format!("[`{m}`]")))
        .collect();
    assert!(
        missing.is_empty(),
        "lib.rs's module map leaves out {missing:?}"
    );
}

#[test]
fn only_the_command_line_prints() {
    let printing: Vec<String> = modules()
        .into_iter()
        .filter(|(m, _)| m != "cli" && !m.starts_with("cli::"))
        .filter(|(_, text)| {
            [
                "print!(",
                "println!(",
                "eprint!(",
                "eprintln!(",
                "std::process::exit(",
            ]
            .iter()
            .any(|p| text.contains(p))
        })
        .map(|(m, _)| m)
        .collect();
    assert!(
        printing.is_empty(),
        "only cli prints or exits (the bench is its own program); these do too: {printing:?}"
    );
    assert!(
        modules().contains_key("hub") && modules().contains_key("cli::serve"),
        "the reader found the library's modules"
    );
}
