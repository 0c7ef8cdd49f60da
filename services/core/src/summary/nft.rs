//! nftables rules (`*.nft`), read as text (no nft binary): tables, chains with their
//! policy and rules, sets and maps with their elements, `define`s, includes, and
//! command-style `add rule` / `add element` lines.

use std::borrow::Cow;
use std::rc::Rc;

use super::{Item, uncommented};

/// Where a line sits. Scopes are made once per block and shared by its items.
#[derive(Debug, Clone)]
enum Block {
    Table(Rc<str>),
    /// The chain: its table, its name, and its scope ("inet filter input").
    Chain(Rc<str>, Rc<str>, Rc<str>),
    Set(Rc<str>),
    Other,
}

pub(super) fn items(text: &str) -> Option<Vec<Item<'_>>> {
    let mut out = Vec::new();
    let none: Rc<str> = Rc::from("");
    let mut stack: Vec<Block> = Vec::new();
    // An `elements = { ... }` list that spans lines: the set it belongs to and the
    // text so far.
    let mut elements: Option<(Rc<str>, String)> = None;
    for line in uncommented(text) {
        if let Some((set, mut acc)) = elements.take() {
            acc.push(' ');
            acc.push_str(line);
            if let Some(end) = acc.find('}') {
                push_elements(&mut out, &set, Cow::Owned(acc[..end].to_owned()));
                braces(&mut stack, &acc[end + 1..], false)?;
            } else {
                elements = Some((set, acc));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let first = line.split_whitespace().next();
        // The words of a line that opens a block or is a command (few lines are).
        let words = || line.split_whitespace().collect::<Vec<&str>>();
        // Whether this line opened a block of its own (table, chain, set): its `{` is that.
        let mut typed = false;
        match (first, stack.last()) {
            (Some("define"), _) => {
                let rest = line["define".len()..].trim();
                let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
                out.push(Item::new("define", none.clone(), name.trim(), value.trim()));
            }
            (Some("include"), _) => out.push(Item::new("include", none.clone(), line["include".len()..].trim(), "")),
            (Some("table"), _) if line.ends_with('{') => {
                let w = words();
                let name: Rc<str> = Rc::from(w[1..w.len() - 1].join(" "));
                out.push(Item::new("table", none.clone(), name.to_string(), ""));
                stack.push(Block::Table(name));
                typed = true;
            }
            (Some("chain"), Some(Block::Table(t))) if line.ends_with('{') => {
                let name: Rc<str> = Rc::from(words().get(1).copied().unwrap_or(""));
                out.push(Item::new("chain", t.clone(), name.to_string(), ""));
                let scope: Rc<str> = Rc::from(format!("{t} {name}"));
                stack.push(Block::Chain(t.clone(), name, scope));
                typed = true;
            }
            (Some("set" | "map"), Some(Block::Table(t))) if line.ends_with('{') => {
                let name: Rc<str> = Rc::from(words().get(1).copied().unwrap_or(""));
                out.push(Item::new("set", t.clone(), name.to_string(), ""));
                stack.push(Block::Set(name));
                typed = true;
            }
            (Some("add" | "insert"), _) if line.split_whitespace().nth(1) == Some("rule") => {
                let w = words();
                if w.len() > 5 {
                    out.push(Item::new("rule", w[2..5].join(" "), w[5..].join(" "), ""));
                }
            }
            (Some("add"), _) if line.split_whitespace().nth(1) == Some("element") => {
                let w = words();
                if w.len() > 4 {
                    let rest = w[5..].join(" ");
                    let list = rest.trim_start_matches('{').trim_end_matches('}').to_owned();
                    push_elements(&mut out, &Rc::from(w[4]), Cow::Owned(list));
                }
            }
            (Some(w), Some(Block::Chain(t, c, scope))) if !w.starts_with('}') => {
                if line.starts_with("type ") {
                    if let Some(p) = line.split("policy").nth(1) {
                        let p = p.trim().trim_end_matches(';').trim();
                        out.push(Item::new("policy", scope.clone(), format!("policy of {t} {c}"), p));
                    }
                } else if line.starts_with("policy ") {
                    let p = line["policy".len()..].trim().trim_end_matches(';').trim();
                    out.push(Item::new("policy", scope.clone(), format!("policy of {t} {c}"), p));
                } else if !line.starts_with("comment ") {
                    out.push(Item::new("rule", scope.clone(), line.trim_end_matches(';'), ""));
                }
            }
            (_, Some(Block::Set(s))) => {
                if let Some(rest) = line.strip_prefix("elements").map(str::trim_start)
                    && let Some(list) = rest.strip_prefix('=').map(str::trim_start)
                {
                    let list = list.strip_prefix('{').unwrap_or(list);
                    match list.find('}') {
                        Some(end) => {
                            push_elements(&mut out, s, Cow::Borrowed(&list[..end]));
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

/// The elements of a list: borrowed from the file's text when the list is on one line.
fn push_elements<'a>(out: &mut Vec<Item<'a>>, set: &Rc<str>, list: Cow<'a, str>) {
    match list {
        Cow::Borrowed(list) => {
            for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                out.push(Item::new("element", set.clone(), e, ""));
            }
        }
        Cow::Owned(list) => {
            for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                out.push(Item::new("element", set.clone(), e.to_owned(), ""));
            }
        }
    }
}
