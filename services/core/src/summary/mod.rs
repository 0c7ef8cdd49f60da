//! Change summaries in the services' own terms: "+2 rules in inet filter input",
//! "+12 local-zones", "client nas-02 added", "+3 reservations in 10.40.0.0/22". Each
//! service's parser reads a file into items (kind, scope, key, value); two versions'
//! items are compared, and what differs is told per kind and scope, as a one-line
//! `summary` for people and as structured `changes`.
//!
//! Invariant: a summary never holds a secret value. It is computed from the stored form
//! of both versions, where every secret is sealed (`ENC[...]`): sealing is deterministic,
//! so a sealed value compares equal exactly when the secret did not change, and a value
//! that holds a sealed part is told as "changed", never shown. Parsers never panic and
//! tolerate any input; a file its parser cannot read is told in line counts.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::domain::Domain;

mod kea;
mod known;
mod nft;
mod radius;
mod unbound;

pub use known::KnownSummaries;

/// One kind of change within one scope: `{kind: "rule", scope: "inet filter input", added: 2}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// What changed: rule, element, set, chain, table, define, policy, local-zone,
    /// local-data, forward-zone, option, include, client, module, virtual server, subnet,
    /// reservation, pool, option-data, lines.
    pub kind: String,
    /// Where: a table and chain, a set, a section, a subnet; empty for the file.
    pub scope: String,
    /// How many were added.
    pub added: u32,
    /// How many were removed.
    pub removed: u32,
    /// How many changed in place.
    pub changed: u32,
}

/// A file's change in the service's terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// One line for people.
    pub summary: String,
    /// The same, structured.
    pub changes: Vec<Change>,
}

/// One thing a parser found in a file. Keys and values borrow the file's text where
/// they can, and scopes are shared: a large file's thousands of rules cost no copies.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item<'a> {
    kind: &'static str,
    scope: Rc<str>,
    /// Its identity within kind and scope (a name, or the item's text for list entries).
    key: Cow<'a, str>,
    /// Its content: a change of it is a change in place.
    value: Cow<'a, str>,
}

impl<'a> Item<'a> {
    fn new(
        kind: &'static str,
        scope: impl Into<Rc<str>>,
        key: impl Into<Cow<'a, str>>,
        value: impl Into<Cow<'a, str>>,
    ) -> Item<'a> {
        Item {
            kind,
            scope: scope.into(),
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Kinds whose entries are told by name ("client nas-02 added") rather than counted.
const NAMED: [&str; 10] = [
    "client",
    "module",
    "virtual server",
    "subnet",
    "forward-zone",
    "stub-zone",
    "table",
    "chain",
    "set",
    "define",
];

/// Kinds whose in-place changes are told with their old and new value ("num-threads
/// 2 → 4"), unless the value holds a sealed secret.
const VALUED: [&str; 2] = ["option", "policy"];

/// Which parser reads a file.
/// A service's parser: a file's items, or `None` when it is not that service's syntax.
type Parse = for<'a> fn(&'a str) -> Option<Vec<Item<'a>>>;

fn parser(domain: Domain, path: &str) -> Option<Parse> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".nft") {
        return Some(nft::items);
    }
    match domain {
        Domain::Dns if name.ends_with(".conf") => Some(unbound::items),
        Domain::Radius => Some(radius::items),
        Domain::Kea if name.ends_with(".conf") || name.ends_with(".json") => Some(kea::items),
        _ => None,
    }
}

/// A whole file added (`added`) or removed: told as such, unread (a first backup reads
/// nothing back), or a module or virtual server link as enabled or disabled.
pub fn whole(path: &str, added: bool) -> Summary {
    if let Some(s) = radius::enabled_link(path, !added, added) {
        return s;
    }
    Summary {
        summary: format!("file {}", if added { "added" } else { "removed" }),
        changes: vec![Change {
            kind: "file".into(),
            scope: String::new(),
            added: u32::from(added),
            removed: u32::from(!added),
            changed: 0,
        }],
    }
}

/// The change from `old` to `new` (stored forms; `None`: the file did not exist) of the
/// file at `path` in `domain`: a file added or removed as [`whole`]; otherwise each
/// service's parser, or line counts.
pub fn summarize(domain: Domain, path: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Summary {
    match (old, new) {
        (None, Some(_)) => return whole(path, true),
        (Some(_), None) => return whole(path, false),
        (None, None) => return Summary::default(),
        (Some(o), Some(n)) if o == n => return Summary::default(),
        _ => {}
    }
    fn text(b: Option<&[u8]>) -> Option<&str> {
        b.map(|b| std::str::from_utf8(b).ok()).unwrap_or(Some(""))
    }
    if let (Some(parse), Some(o), Some(n)) = (parser(domain, path), text(old), text(new))
        && !crate::secrets::is_sealed_file(old.unwrap_or_default())
        && !crate::secrets::is_sealed_file(new.unwrap_or_default())
        && let (Some(a), Some(b)) = (parse(o), parse(n))
    {
        let s = compare(&a, &b);
        if !s.changes.is_empty() {
            return s;
        }
    }
    lines(old.unwrap_or_default(), new.unwrap_or_default())
}

impl Summary {
    /// Adds words that are not the parser's (a change of mode or owner, a link's target).
    pub fn with_words(mut self, kind: &str, words: &[String]) -> Summary {
        if words.is_empty() {
            return self;
        }
        if !self.summary.is_empty() {
            self.summary.push_str("; ");
        }
        self.summary.push_str(&words.join(", "));
        self.changes.push(Change {
            kind: kind.to_owned(),
            scope: String::new(),
            added: 0,
            removed: 0,
            changed: words.len() as u32,
        });
        self
    }

    /// The structured changes as stored in the audit trail: a line per change,
    /// `kind<TAB>scope<TAB>added<TAB>removed<TAB>changed`.
    pub fn encode_changes(&self) -> String {
        self.changes
            .iter()
            .map(|c| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    c.kind.replace(['\t', '\n'], " "),
                    c.scope.replace(['\t', '\n'], " "),
                    c.added,
                    c.removed,
                    c.changed
                )
            })
            .collect()
    }

    /// Reads [`Summary::encode_changes`]' form (lines it cannot read are left out).
    pub fn decode(summary: &str, changes: &str) -> Summary {
        Summary {
            summary: summary.to_owned(),
            changes: changes
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    let [kind, scope, a, r, c] = f.as_slice() else {
                        return None;
                    };
                    Some(Change {
                        kind: (*kind).to_owned(),
                        scope: (*scope).to_owned(),
                        added: a.parse().ok()?,
                        removed: r.parse().ok()?,
                        changed: c.parse().ok()?,
                    })
                })
                .collect(),
        }
    }
}

/// Line counts: the summary of a file no parser reads.
fn lines(old: &[u8], new: &[u8]) -> Summary {
    let (added, removed) = line_diff(old, new);
    if added == 0 && removed == 0 {
        return Summary::default();
    }
    Summary {
        summary: format!("+{added} -{removed} lines"),
        changes: vec![Change {
            kind: "lines".into(),
            scope: String::new(),
            added,
            removed,
            changed: 0,
        }],
    }
}

/// Lines added and removed, as multisets (order ignored): cheap and never quadratic.
fn line_diff(old: &[u8], new: &[u8]) -> (u32, u32) {
    let mut count: BTreeMap<&[u8], i64> = BTreeMap::new();
    for l in old.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        *count.entry(l).or_default() -= 1;
    }
    for l in new.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        *count.entry(l).or_default() += 1;
    }
    let added: i64 = count.values().filter(|c| **c > 0).sum();
    let removed: i64 = -count.values().filter(|c| **c < 0).sum::<i64>();
    (clamp(added), clamp(removed))
}

fn clamp(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Whether a value holds a sealed secret: never shown.
fn sealed(value: &str) -> bool {
    value.contains("ENC[")
}

/// Whether an option's name says it holds a secret: its value is never shown, even in
/// history from before sealing, where it may be in clear.
fn secretish(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "password", "passwd", "psk", "key", "token", "credential"]
        .iter()
        .any(|w| n.contains(w))
}

/// Compares two versions' items and tells the difference.
fn compare(old: &[Item<'_>], new: &[Item<'_>]) -> Summary {
    let (old, new) = unshared(old, new);
    tell(&old, &new)
}

/// What of two versions' items (each in file order) can tell them apart, in file order:
/// all but their common prefix, and of their common suffix only the items whose key is
/// also in what is left between. A change is mostly a few lines in a large file: what is
/// sorted and walked is those lines, not the file.
///
/// [`tell`] reads the same difference from these as from all items. A key's values are
/// compared in file order, pair by pair from the first: the common prefix holds each
/// key's first values, the same on both sides, and removing them removes equal pairs from
/// the front. A key of the suffix found nowhere else has the same values on both sides
/// and is told nowhere; a key also found between keeps its suffix items, so its values
/// stay whole (removing its last values would shift which pairs are compared when the
/// two sides hold different numbers of it).
#[allow(clippy::type_complexity)]
fn unshared<'i, 'a>(old: &'i [Item<'a>], new: &'i [Item<'a>]) -> (Vec<&'i Item<'a>>, Vec<&'i Item<'a>>) {
    let same = |a: &Item<'_>, b: &Item<'_>| {
        str_eq(&a.key, &b.key) && a.kind == b.kind && str_eq(&a.scope, &b.scope) && str_eq(&a.value, &b.value)
    };
    let prefix = old.iter().zip(new).take_while(|(a, b)| same(a, b)).count();
    let (old, new) = (&old[prefix..], &new[prefix..]);
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take_while(|(a, b)| same(a, b))
        .count();
    let (old_between, old_suffix) = old.split_at(old.len() - suffix);
    let (new_between, new_suffix) = new.split_at(new.len() - suffix);
    let key = |i: &'i Item<'a>| -> Key<'i> { (i.kind, &*i.scope, &*i.key) };
    // The keys between, sorted: a suffix is most of a file, and a search of the few keys
    // between compares a handful of bytes where a hash set hashed every suffix key whole.
    let mut between: Vec<Key<'i>> = Vec::new();
    if suffix > 0 {
        between.extend(old_between.iter().chain(new_between).map(key));
        between.sort_unstable_by(key_cmp);
        between.dedup_by(|a, b| key_eq(a, b));
    }
    let side = |between_part: &'i [Item<'a>], suffix_part: &'i [Item<'a>]| -> Vec<&'i Item<'a>> {
        between_part
            .iter()
            .chain(
                suffix_part
                    .iter()
                    .filter(|i| between.binary_search_by(|k| key_cmp(k, &key(i))).is_ok()),
            )
            .collect()
    };
    (side(old_between, old_suffix), side(new_between, new_suffix))
}

/// Tells the difference between two versions' items (each in file order).
fn tell(old: &[&Item<'_>], new: &[&Item<'_>]) -> Summary {
    // Per (kind, scope): counts, and the named entries with their words.
    let mut groups: BTreeMap<(&'static str, &str), (Change, Vec<String>)> = BTreeMap::new();
    each_differing(&sorted(old), &sorted(new), |(kind, scope, name), o, n| {
        let g = groups.entry((kind, scope)).or_insert_with(|| {
            (
                Change {
                    kind: kind.to_owned(),
                    scope: scope.to_owned(),
                    ..Default::default()
                },
                Vec::new(),
            )
        });
        let (added, removed) = (n.len().saturating_sub(o.len()), o.len().saturating_sub(n.len()));
        g.0.added += added as u32;
        g.0.removed += removed as u32;
        let named = NAMED.contains(&kind);
        if named && added > 0 {
            g.1.push(format!("{kind} {name} added"));
        }
        if named && removed > 0 {
            g.1.push(format!("{kind} {name} removed"));
        }
        let changed = o.iter().zip(n.iter()).filter(|(x, y)| x != y).count();
        if changed > 0 {
            g.0.changed += changed as u32;
            let (x, y) = o
                .iter()
                .zip(n.iter())
                .find(|(x, y)| x != y)
                .map(|(x, y)| (*x, *y))
                .unwrap_or_default();
            if VALUED.contains(&kind) {
                if sealed(x) || sealed(y) || secretish(name) {
                    g.1.push(format!("{name} changed"));
                } else {
                    g.1.push(format!("{name} {} → {}", short(x), short(y)));
                }
            } else if named {
                match attribute_words(x, y) {
                    Some(w) => g.1.push(format!("{kind} {name}: {w}")),
                    None => g.1.push(format!("{kind} {name} changed")),
                }
            }
        }
    });
    let mut changes = Vec::new();
    let mut phrases = Vec::new();
    for ((kind, scope), (c, mut named)) in groups {
        // In the words' own order, not their keys'.
        named.sort();
        if c.added == 0 && c.removed == 0 && c.changed == 0 {
            continue;
        }
        let at = if scope.is_empty() {
            String::new()
        } else {
            format!(" in {scope}")
        };
        let told_by_name = !named.is_empty() && named.len() <= 4;
        if NAMED.contains(&kind) && told_by_name {
            phrases.extend(named);
        } else {
            if c.added > 0 {
                phrases.push(format!("+{} {}{at}", c.added, plural(kind, c.added)));
            }
            if c.removed > 0 {
                phrases.push(format!("-{} {}{at}", c.removed, plural(kind, c.removed)));
            }
            if c.changed > 0 && VALUED.contains(&kind) && told_by_name {
                phrases.extend(named);
            } else if c.changed > 0 {
                phrases.push(format!("{} {} changed{at}", c.changed, plural(kind, c.changed)));
            }
        }
        changes.push(c);
    }
    let mut summary = String::new();
    for (i, p) in phrases.iter().enumerate() {
        if summary.len() + p.len() > 300 {
            summary.push_str(&format!("; … ({} more)", phrases.len() - i));
            break;
        }
        if i > 0 {
            summary.push_str("; ");
        }
        summary.push_str(p);
    }
    Summary { summary, changes }
}

/// An item's key: (kind, scope, key).
type Key<'i> = (&'static str, &'i str, &'i str);

/// A side's items by key: the key and the value.
type Keyed<'i> = (Key<'i>, &'i str);

/// Whether two strings are equal; at once when they are the same string or both empty
/// (the kinds are the parsers' literals, and most values and scopes are empty). Two
/// versions' items are compared tens of thousands of times in a Diff, most of them equal.
fn str_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// Two strings' order, as `str`'s, equal at once when they are the same string.
fn str_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    if a.len() == b.len() && std::ptr::eq(a.as_ptr(), b.as_ptr()) {
        std::cmp::Ordering::Equal
    } else {
        a.cmp(b)
    }
}

/// Whether two keys are equal: the key first, which tells most apart.
fn key_eq(a: &Key<'_>, b: &Key<'_>) -> bool {
    str_eq(a.2, b.2) && str_eq(a.0, b.0) && str_eq(a.1, b.1)
}

/// Two keys' order: by kind, scope and key, as the tuple's.
fn key_cmp(a: &Key<'_>, b: &Key<'_>) -> std::cmp::Ordering {
    str_cmp(a.0, b.0)
        .then_with(|| str_cmp(a.1, b.1))
        .then_with(|| str_cmp(a.2, b.2))
}

/// Items sorted by key, each key's values in file order (a stable sort): two versions
/// are compared by walking both at once. A sorted vector rather than a map of each key's
/// values: a blocklist is tens of thousands of keys, and a map made one allocation per
/// key (and hashed each key twice).
fn sorted<'i>(items: &[&'i Item<'_>]) -> Vec<Keyed<'i>> {
    let mut v: Vec<Keyed<'i>> = items
        .iter()
        .map(|i| ((i.kind, &*i.scope, &*i.key), &*i.value))
        .collect();
    v.sort_by(|x, y| key_cmp(&x.0, &y.0));
    v
}

/// Calls `f` with each key whose values differ between `a` and `b` (both [`sorted`]),
/// in key order, with its values on each side in file order; most of a large file is the
/// same in both, and is passed over: a key with one entry, the same on both sides, at
/// once.
fn each_differing<'i>(a: &[Keyed<'i>], b: &[Keyed<'i>], mut f: impl FnMut(Key<'i>, &[&'i str], &[&'i str])) {
    let (mut o, mut n): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    loop {
        if let (Some(x), Some(y)) = (a.get(i), b.get(j))
            && key_eq(&x.0, &y.0)
            && str_eq(x.1, y.1)
            && a.get(i + 1).is_none_or(|e| !key_eq(&e.0, &x.0))
            && b.get(j + 1).is_none_or(|e| !key_eq(&e.0, &y.0))
        {
            i += 1;
            j += 1;
            continue;
        }
        let key = match (a.get(i), b.get(j)) {
            (None, None) => break,
            (Some(x), None) => x.0,
            (None, Some(y)) => y.0,
            (Some(x), Some(y)) if key_cmp(&x.0, &y.0).is_le() => x.0,
            (Some(_), Some(y)) => y.0,
        };
        o.clear();
        n.clear();
        while let Some(&(_, v)) = a.get(i).filter(|e| key_eq(&e.0, &key)) {
            o.push(v);
            i += 1;
        }
        while let Some(&(_, v)) = b.get(j).filter(|e| key_eq(&e.0, &key)) {
            n.push(v);
            j += 1;
        }
        if o.len() != n.len() || !o.iter().zip(&n).all(|(x, y)| str_eq(x, y)) {
            f(key, &o, &n);
        }
    }
}

fn plural(kind: &str, n: u32) -> String {
    if n == 1 {
        kind.to_owned()
    } else if let Some(stem) = kind.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{kind}s")
    }
}

/// A value cut for a summary line.
fn short(v: &str) -> String {
    let v = v.trim();
    match v.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &v[..i]),
        None => v.to_owned(),
    }
}

/// Which attributes of a block changed ("secret changed, ipaddr changed"), from values
/// written as `key = value` lines; `None` when they are not.
fn attribute_words(old: &str, new: &str) -> Option<String> {
    let attrs = |v: &str| -> Option<BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        for l in v.lines().filter(|l| !l.trim().is_empty()) {
            let (k, val) = l.split_once('=')?;
            m.insert(k.trim().to_owned(), val.trim().to_owned());
        }
        Some(m)
    };
    let (a, b) = (attrs(old)?, attrs(new)?);
    let mut words = Vec::new();
    for k in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x != y => words.push(format!("{k} changed")),
            (None, Some(_)) => words.push(format!("{k} set")),
            (Some(_), None) => words.push(format!("{k} removed")),
            _ => {}
        }
    }
    (!words.is_empty()).then(|| words.join(", "))
}

/// Text without `#` comments (outside double quotes), line by line.
fn uncommented(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| {
        let bytes = l.as_bytes();
        // Most lines hold no `#`, and most that do hold no quote before it: a search for
        // the byte, not a walk of every character (a fifth of a Diff's summaries).
        let Some(hash) = memchr::memchr(b'#', bytes) else {
            return l.trim();
        };
        if memchr::memchr(b'"', &bytes[..hash]).is_none() {
            return l[..hash].trim();
        }
        // `"` and `#` are ASCII: the index of either is a character boundary.
        let mut quoted = false;
        for (i, c) in bytes.iter().enumerate() {
            match c {
                b'"' => quoted = !quoted,
                b'#' if !quoted => return l[..i].trim(),
                _ => {}
            }
        }
        l.trim()
    })
}

#[cfg(test)]
mod tests;
