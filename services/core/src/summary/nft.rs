//! nftables rules (`*.nft`), read as text (no nft binary): tables, chains with their
//! policy and rules, sets and maps with their elements, `define`s, includes, and
//! command-style `add rule` / `add element` lines.

use super::{Item, uncommented};

/// Where a line sits.
#[derive(Debug, Clone)]
enum Block {
    Table(String),
    Chain(String, String),
    Set(String),
    Other,
}

pub(super) fn items(text: &str) -> Option<Vec<Item>> {
    let mut out = Vec::new();
    let mut stack: Vec<Block> = Vec::new();
    // An `elements = { ... }` list that spans lines: the set it belongs to and the
    // text so far.
    let mut elements: Option<(String, String)> = None;
    for line in uncommented(text) {
        if let Some((set, mut acc)) = elements.take() {
            acc.push(' ');
            acc.push_str(line);
            if let Some(end) = acc.find('}') {
                push_elements(&mut out, &set, &acc[..end]);
                braces(&mut stack, &acc[end + 1..], false)?;
            } else {
                elements = Some((set, acc));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        // Whether this line opened a block of its own (table, chain, set): its `{` is that.
        let mut typed = false;
        match (words.first().copied(), stack.last()) {
            (Some("define"), _) => {
                let rest = line["define".len()..].trim();
                let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
                out.push(Item::new("define", "", name.trim(), value.trim()));
            }
            (Some("include"), _) => out.push(Item::new("include", "", line["include".len()..].trim(), "")),
            (Some("table"), _) if line.ends_with('{') => {
                let name = words[1..words.len() - 1].join(" ");
                out.push(Item::new("table", "", name.clone(), ""));
                stack.push(Block::Table(name));
                typed = true;
            }
            (Some("chain"), Some(Block::Table(t))) if line.ends_with('{') => {
                let name = words.get(1).copied().unwrap_or("").to_owned();
                out.push(Item::new("chain", t.clone(), name.clone(), ""));
                stack.push(Block::Chain(t.clone(), name));
                typed = true;
            }
            (Some("set" | "map"), Some(Block::Table(t))) if line.ends_with('{') => {
                let name = words.get(1).copied().unwrap_or("").to_owned();
                out.push(Item::new("set", t.clone(), name.clone(), ""));
                stack.push(Block::Set(name));
                typed = true;
            }
            (Some("add" | "insert"), _) if words.get(1) == Some(&"rule") && words.len() > 5 => {
                let scope = words[2..5].join(" ");
                out.push(Item::new("rule", scope, words[5..].join(" "), ""));
            }
            (Some("add"), _) if words.get(1) == Some(&"element") && words.len() > 4 => {
                let rest = words[5..].join(" ");
                push_elements(&mut out, words[4], rest.trim_start_matches('{').trim_end_matches('}'));
            }
            (Some(w), Some(Block::Chain(t, c))) if !w.starts_with('}') => {
                let scope = format!("{t} {c}");
                if line.starts_with("type ") {
                    if let Some(p) = line.split("policy").nth(1) {
                        let p = p.trim().trim_end_matches(';').trim();
                        out.push(Item::new("policy", scope, format!("policy of {t} {c}"), p));
                    }
                } else if line.starts_with("policy ") {
                    let p = line["policy".len()..].trim().trim_end_matches(';').trim();
                    out.push(Item::new("policy", scope, format!("policy of {t} {c}"), p));
                } else if !line.starts_with("comment ") {
                    out.push(Item::new("rule", scope, line.trim_end_matches(';'), ""));
                }
            }
            (_, Some(Block::Set(s))) => {
                if let Some(rest) = line.strip_prefix("elements").map(str::trim_start)
                    && let Some(list) = rest.strip_prefix('=').map(str::trim_start)
                {
                    let list = list.strip_prefix('{').unwrap_or(list);
                    match list.find('}') {
                        Some(end) => {
                            push_elements(&mut out, s, &list[..end]);
                            // The list's braces are its own.
                            braces(&mut stack, &list[end + 1..], false)?;
                        }
                        None => elements = Some((s.clone(), list.to_owned())),
                    }
                    continue;
                }
            }
            _ => {}
        }
        braces(&mut stack, line, typed)?;
    }
    // Unbalanced braces or an open list: not read as nftables.
    (stack.is_empty() && elements.is_none()).then_some(out)
}

/// Follows the braces of `text` that no block of ours accounts for (`typed`: its last
/// `{` opened one): `None` when more close than were open.
fn braces(stack: &mut Vec<Block>, text: &str, typed: bool) -> Option<()> {
    let opens = text.matches('{').count() - usize::from(typed);
    for _ in 0..opens {
        stack.push(Block::Other);
    }
    for _ in text.matches('}') {
        stack.pop()?;
    }
    Some(())
}

fn push_elements(out: &mut Vec<Item>, set: &str, list: &str) {
    for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        out.push(Item::new("element", set, e, ""));
    }
}
