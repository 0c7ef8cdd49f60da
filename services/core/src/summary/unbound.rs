//! Unbound's `key: value` lines: local-zone and local-data entries (sinkhole and
//! blocklist entries, counted), forward-zone and stub-zone blocks by name, includes, and
//! every other option by its section and name ("num-threads 2 → 4").

use std::rc::Rc;

use super::{Item, uncommented};

/// Options that may appear many times: their entries are counted, not compared by name.
const LISTS: [&str; 14] = [
    "access-control",
    "interface",
    "outgoing-interface",
    "private-address",
    "private-domain",
    "domain-insecure",
    "local-data-ptr",
    "trust-anchor",
    "trust-anchor-file",
    "define-tag",
    "local-zone-tag",
    "access-control-tag",
    "response-ip",
    "module-config",
];

pub(super) fn items(text: &str) -> Option<Vec<Item<'_>>> {
    // At most an item a line: a blocklist of tens of thousands of lines is not copied
    // again each time the vector doubles.
    let mut out = Vec::with_capacity(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1);
    let none: Rc<str> = Rc::from("");
    let mut section: Rc<str> = none.clone();
    // The open forward-zone or stub-zone: its kind, name and other lines.
    let mut zone: Option<(&'static str, String, Vec<String>)> = None;
    let flush = |zone: &mut Option<(&'static str, String, Vec<String>)>, out: &mut Vec<Item<'_>>| {
        if let Some((kind, name, mut lines)) = zone.take() {
            lines.sort();
            out.push(Item::new(kind, "", name, lines.join("\n")));
        }
    };
    for line in uncommented(text) {
        if line.is_empty() {
            continue;
        }
        let (key, value) = match line.split_once(':') {
            Some((k, v)) if !k.contains(char::is_whitespace) && !k.contains('"') => (k.trim(), v.trim()),
            // Not a `key: value` line: not Unbound's syntax.
            _ => return None,
        };
        if value.is_empty() {
            flush(&mut zone, &mut out);
            section = Rc::from(key);
            if key == "forward-zone" || key == "stub-zone" {
                zone = Some((
                    if key == "forward-zone" {
                        "forward-zone"
                    } else {
                        "stub-zone"
                    },
                    String::new(),
                    Vec::new(),
                ));
            }
            continue;
        }
        let value = value.trim_matches('"');
        if let Some((_, name, lines)) = zone.as_mut() {
            if key == "name" {
                *name = value.to_owned();
            } else {
                lines.push(format!("{key} = {value}"));
            }
            continue;
        }
        match key {
            "local-zone" => out.push(Item::new("local-zone", none.clone(), value, "")),
            "local-data" => out.push(Item::new("local-data", none.clone(), value, "")),
            "include" | "include-toplevel" => out.push(Item::new("include", none.clone(), value, "")),
            k if LISTS.contains(&k) => out.push(Item::new("option", section.clone(), format!("{k} {value}"), "")),
            k => out.push(Item::new("option", section.clone(), k, value)),
        }
    }
    flush(&mut zone, &mut out);
    Some(out)
}
