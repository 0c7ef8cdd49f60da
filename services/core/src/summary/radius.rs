//! FreeRADIUS configuration: `client NAME { ... }` blocks by name (which attributes
//! changed; a secret is "changed" or "set", never shown), virtual servers (`server NAME
//! { ... }`), module blocks of mods-available files, top-level options; and a module or
//! virtual server enabled or disabled by its link in mods-enabled or sites-enabled.

use super::{Change, Item, Summary, uncommented};

/// A file in mods-enabled or sites-enabled that appeared or went: a module or virtual
/// server enabled or disabled.
pub(super) fn enabled_link(path: &str, existed: bool, exists: bool) -> Option<Summary> {
    let (dir, name) = path.rsplit_once('/')?;
    let kind = match dir.rsplit('/').next()? {
        "mods-enabled" => "module",
        "sites-enabled" => "virtual server",
        _ => return None,
    };
    let (word, added, removed) = match (existed, exists) {
        (false, true) => ("enabled", 1, 0),
        (true, false) => ("disabled", 0, 1),
        _ => return None,
    };
    Some(Summary {
        summary: format!("{kind} {name} {word}"),
        changes: vec![Change {
            kind: kind.to_owned(),
            scope: String::new(),
            added,
            removed,
            changed: 0,
        }],
    })
}

pub(super) fn items(text: &str) -> Option<Vec<Item<'_>>> {
    let mut out = Vec::new();
    // Open blocks: (kind, name, depth at which it opened, its lines).
    let mut open: Option<(&'static str, String, usize, Vec<String>)> = None;
    let mut depth = 0usize;
    for line in uncommented(text) {
        if line.is_empty() || line.starts_with('$') {
            continue;
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if depth == 0 && opens > 0 && open.is_none() {
            let head: Vec<&str> = line.trim_end_matches('{').split_whitespace().collect();
            let (kind, name) = match head.as_slice() {
                ["client", name, ..] => ("client", (*name).to_owned()),
                ["server", name, ..] => ("virtual server", (*name).to_owned()),
                [
                    "listen" | "policy" | "instantiate" | "modules" | "thread" | "log" | "security"
                    | "home_server_pool" | "realm" | "home_server",
                    ..,
                ] => ("section", head.join(" ")),
                [module, instance] => ("module", format!("{module} {instance}")),
                [module] => ("module", (*module).to_owned()),
                _ => ("section", head.join(" ")),
            };
            open = Some((kind, name, depth, Vec::new()));
        } else if let Some((_, _, _, lines)) = open.as_mut() {
            if closes == 0 || opens > 0 {
                lines.push(normalize(line));
            }
        } else if depth == 0 {
            match line.split_once('=') {
                Some((k, v)) => out.push(Item::new("option", "", k.trim(), v.trim())),
                None => return None,
            }
        }
        depth = (depth + opens).checked_sub(closes)?;
        if depth == 0
            && let Some((kind, name, _, lines)) = open.take()
        {
            // A client's attributes read as `key = value` lines, so a change names them.
            let value = lines.join("\n");
            if kind != "section" {
                out.push(Item::new(kind, "", name, value));
            } else {
                out.push(Item::new("section", "", name, value));
            }
        }
    }
    (depth == 0).then_some(out)
}

/// One line of a block, spaces normalized (`secret=x` and `secret = x` are the same).
fn normalize(line: &str) -> String {
    match line.split_once('=') {
        Some((k, v)) if !k.contains(['{', '}']) => format!("{} = {}", k.trim(), v.trim()),
        _ => line.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}
