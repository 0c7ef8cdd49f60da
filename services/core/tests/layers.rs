//! The core crate's files import one another in layers, never in a circle.
//!
//! A file's imports are the files its paths name: `crate::…`, `super::…`, `self::…` and a
//! submodule's own name, in `use` lines and inline, outside comments, strings and
//! `#[cfg(test)]` modules. A module reaching into its own submodules is how it is built,
//! not a dependency, so those paths do not count; a submodule reaching its parent does.
//! A circle fails this test with the files and the paths that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module, as the path of its segments under `crate` (`["repo", "commit"]`).
type Module = Vec<String>;

#[test]
fn the_core_crate_has_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    assert!(
        files.len() > 20,
        "found only {} files under {}",
        files.len(),
        src.display()
    );
    let known: BTreeSet<Module> = files.keys().cloned().collect();
    let mut graph: BTreeMap<Module, BTreeMap<Module, String>> = BTreeMap::new();
    for (module, text) in &files {
        let edges = graph.entry(module.clone()).or_default();
        for path in paths(&without_tests(&strip(text))) {
            if let Some(target) = resolve(module, &path, &known)
                && target != *module
                && !target.starts_with(module)
            {
                edges.entry(target).or_insert(path);
            }
        }
    }
    let circles: Vec<String> = strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            c.iter()
                .flat_map(|m| {
                    graph[m]
                        .iter()
                        .filter(|(t, _)| c.contains(t))
                        .map(move |(t, via)| format!("  {} -> {} ({via})", name(m), name(t)))
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert!(
        circles.is_empty(),
        "the core crate's imports form a circle; move the shared name down a layer (ARCHITECTURE.md):\n{}",
        circles.join("\n\n")
    );
}

#[test]
fn the_checker_finds_a_circle_and_a_grouped_import() {
    let known: BTreeSet<Module> = [vec![], m("a"), m("b"), m("b/c")].into_iter().collect();
    let text = strip("use crate::{a::X, b::c::{self, Y}}; // crate::nothing\nfn f() { \"crate::b\"; }");
    let found: BTreeSet<Module> = paths(&text)
        .iter()
        .filter_map(|p| resolve(&m("a"), p, &known))
        .collect();
    assert_eq!(found, [m("a"), m("b/c")].into_iter().collect());
    let graph: BTreeMap<Module, BTreeMap<Module, String>> = [
        (m("a"), [(m("b"), String::new())].into_iter().collect()),
        (m("b"), [(m("a"), String::new())].into_iter().collect()),
    ]
    .into_iter()
    .collect();
    assert_eq!(strongly_connected(&graph).iter().filter(|c| c.len() > 1).count(), 1);
    assert_eq!(
        without_tests("fn a() {}\n#[cfg(test)]\nmod tests { use crate::b; }\nfn z() {}"),
        "fn a() {}\n\nfn z() {}"
    );
}

fn m(s: &str) -> Module {
    s.split('/').map(str::to_owned).collect()
}

fn name(m: &Module) -> String {
    if m.is_empty() { "lib".to_owned() } else { m.join("/") }
}

/// Every `.rs` file under `src`, by module path (`mod.rs` and `lib.rs` name their directory).
fn modules(src: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            let mut module = prefix.to_vec();
            if path.is_dir() {
                module.push(stem);
                walk(&path, &module, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if stem != "mod" && stem != "lib" {
                    module.push(stem);
                }
                out.insert(module, std::fs::read_to_string(&path).expect("read source"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// The text without comments, and with string and char literals emptied.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) && !ident_before(b, i) {
            // A raw string: r"…", r#"…"#.
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let end: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&end) {
                i += 1;
            }
            i += end.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && char_literal_len(&b[i..]).is_some() {
            i += char_literal_len(&b[i..]).unwrap_or(1);
            out.push_str("' '");
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The length of a char literal at the start of `b` (`'x'`, `'\n'`, `'\''`), or `None`
/// for a lifetime.
fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        let close = b[2..].iter().position(|&c| c == b'\'')?;
        return Some(close + 3);
    }
    let text = std::str::from_utf8(&b[1..b.len().min(6)]).unwrap_or_default();
    let c = text.chars().next()?;
    (b.get(1 + c.len_utf8()) == Some(&b'\'')).then_some(2 + c.len_utf8())
}

/// The text without `#[cfg(test)]` items (the attribute and the item or block after it).
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let open = after.find('{');
        let semi = after.find(';');
        let end = match (open, semi) {
            (Some(o), Some(s)) if s < o => s + 1,
            (Some(o), _) => {
                let mut depth = 0;
                let mut end = after.len();
                for (k, c) in after[o..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = o + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(s)) => s + 1,
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every path of two or more segments (`a::b`), with `use` groups expanded.
fn paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        let tree: String = after[..end].chars().filter(|c| !c.is_whitespace()).collect();
        out.extend(expand(&tree));
        rest = &after[end..];
    }
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if (b[i].is_ascii_alphabetic() || b[i] == b'_') && !ident_before(b, i) && !(i >= 2 && &b[i - 2..i] == b"::") {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i..].starts_with(b"::")) {
                i += if b[i] == b':' { 2 } else { 1 };
            }
            let path = text[start..i].trim_end_matches(':');
            if path.contains("::") {
                out.push(path.to_owned());
            }
        } else {
            i += 1;
        }
    }
    out
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(k) = text[from..].find(word) {
        let at = from + k;
        let end = at + word.len();
        if !ident_before(b, at) && b.get(end).is_some_and(|c| c.is_ascii_whitespace()) {
            return Some(at);
        }
        from = end;
    }
    None
}

/// `a::{b, c::{self, d}}` → `a::b`, `a::c`, `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![path.trim_end_matches("::self").to_owned()];
    };
    let prefix = &tree[..open];
    let mut depth = 0;
    let mut close = tree.len();
    for (k, c) in tree[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = open + k;
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = &tree[open + 1..close.min(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(|item| {
            if item == "self" {
                vec![prefix.trim_end_matches("::").to_owned()]
            } else {
                expand(&format!("{prefix}{item}"))
            }
        })
        .collect()
}

/// The deepest known module a path names from `from`, if it names one of ours.
fn resolve(from: &Module, path: &str, known: &BTreeSet<Module>) -> Option<Module> {
    let mut segs = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut base: Module = match *segs.peek()? {
        "crate" => {
            segs.next();
            Vec::new()
        }
        "super" => {
            let mut base = from.clone();
            while segs.peek() == Some(&"super") {
                segs.next();
                base.pop();
            }
            base
        }
        "self" => {
            segs.next();
            from.clone()
        }
        first => {
            let mut child = from.clone();
            child.push(first.to_owned());
            if !known.contains(&child) {
                return None;
            }
            from.clone()
        }
    };
    let mut best = known.contains(&base).then(|| base.clone());
    for seg in segs {
        base.push(seg.to_owned());
        if known.contains(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &BTreeMap<Module, BTreeMap<Module, String>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeMap<Module, String>>,
        index: BTreeMap<&'a Module, (usize, usize)>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        s.index.insert(v, (s.next, s.next));
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.index[w].1.min(s.index[v].1);
                s.index.get_mut(v).expect("visited").1 = low;
            } else if s.on_stack.contains(w) {
                let low = s.index[w].0.min(s.index[v].1);
                s.index.get_mut(v).expect("visited").1 = low;
            }
        }
        if s.index[v].0 == s.index[v].1 {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}
