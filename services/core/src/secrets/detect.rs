//! Where the secrets of a file are: the built-in detectors for the four services, and
//! the operator's rules (`CONFIG_BACKUP_SECRETS__<domain>`). A detector returns byte
//! spans of secret values with a *locator*, the value's structural position (block path
//! and key, or JSON path): the locator is bound into the seal, so one secret in two
//! places seals to two ciphertexts, and an unchanged secret keeps its ciphertext when
//! lines are added around it. Detectors work on bytes, never panic, and tolerate any
//! input (a file that does not parse is scanned as far as it goes).

use std::collections::HashMap;

use memchr::memmem;
use regex::bytes::Regex;

use crate::domain::Domain;

/// A secret value's bytes in the file, and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// Structural position (bound into the seal).
    pub locator: String,
}

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    /// The whole file is a secret (a private key, or a `file:` rule).
    pub whole: bool,
    /// Secret values, in file order, not overlapping.
    pub spans: Vec<Span>,
}

/// The built-in syntax of a domain's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// No built-in value rules (private keys are still found).
    None,
    /// FreeRADIUS configuration and users files.
    Radius,
    /// Kea's JSON (with comments).
    Kea,
    /// Unbound's `key: value` lines.
    Unbound,
}

impl Builtin {
    /// The built-in rules of a domain.
    pub fn of(domain: Domain) -> Builtin {
        match domain {
            Domain::Radius => Builtin::Radius,
            Domain::Kea => Builtin::Kea,
            Domain::Dns => Builtin::Unbound,
            Domain::Gateway | Domain::Ospf => Builtin::None,
        }
    }
}

/// One operator rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `key:NAME`: the value of `NAME = v`, `NAME := v` or `NAME: v` anywhere.
    Key { name: String, re: Regex },
    /// `json:NAME`: a JSON member's string value; `*` at either end is a wildcard.
    Json(NamePattern),
    /// `regex:RE`: the one capture group of every match.
    Regex { index: usize, re: Regex },
    /// `file:GLOB`: the whole file, for paths the glob matches.
    File(globset::GlobMatcher),
}

/// A JSON member name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// Exactly this name.
    Exact(String),
    /// Names ending so (lower-cased).
    Suffix(String),
    /// Names starting so (lower-cased).
    Prefix(String),
}

impl NamePattern {
    fn matches(&self, name: &[u8]) -> bool {
        match self {
            NamePattern::Exact(n) => name == n.as_bytes(),
            NamePattern::Suffix(s) => {
                name.len() >= s.len() && name[name.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
            NamePattern::Prefix(p) => name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p.as_bytes()),
        }
    }
}

/// A domain's rules: its built-in syntax and the operator's additions.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Built-in rules.
    pub builtin: Builtin,
    /// Operator rules, in the order given.
    pub custom: Vec<Rule>,
    /// The rule text as given (for the sealing fingerprint).
    pub text: String,
}

/// Why a rule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {index} ({}): {message}", crate::domain::quote_input(rule))]
pub struct BadRule {
    /// 1-based.
    pub index: usize,
    /// The rule as given (cut).
    pub rule: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// The allowed rule kinds, for messages.
pub const RULE_KINDS: &str = "key:NAME, json:NAME, regex:RE (one capture group), file:GLOB";

impl Rules {
    /// A domain's built-in rules and the operator's `text` (rules separated by `;`).
    pub fn parse(domain: Domain, text: &str) -> Result<Rules, BadRule> {
        let mut custom = Vec::new();
        for (i, raw) in text.split(';').map(str::trim).filter(|r| !r.is_empty()).enumerate() {
            let index = i + 1;
            // Messages of the regex and glob crates quote the whole pattern: bounded here.
            let bad = |message: String| BadRule {
                index,
                rule: raw.to_owned(),
                message: crate::domain::bounded(&message, 240),
            };
            let (kind, arg) = raw
                .split_once(':')
                .ok_or_else(|| bad(format!("no kind: write KIND:ARGUMENT, with KIND one of {RULE_KINDS}")))?;
            let arg = arg.trim();
            if arg.is_empty() {
                return Err(bad("the argument is empty".to_owned()));
            }
            let rule = match kind.trim() {
                "key" => {
                    if !arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
                        return Err(bad("a key name has letters, digits, '_', '-' and '.' only".to_owned()));
                    }
                    let re = Regex::new(&format!(
                        r#"(?m)(?:^|[^A-Za-z0-9_.\-])(?:{})[ \t]*(?::=|=|:)[ \t]*(?:"((?:[^"\\\n]|\\.)*)"|'([^'\n]*)'|([^\s#;,'"]+))"#,
                        regex::escape(arg)
                    ))
                    .map_err(|e| bad(e.to_string()))?;
                    Rule::Key {
                        name: arg.to_owned(),
                        re,
                    }
                }
                "json" => Rule::Json(parse_name_pattern(arg).map_err(|m| bad(m.to_owned()))?),
                "regex" => {
                    let re = regex::bytes::RegexBuilder::new(arg)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| bad(format!("not a valid regular expression: {}", last_line(&e.to_string()))))?;
                    if re.captures_len() != 2 {
                        return Err(bad(format!(
                            "a regex rule needs exactly one capture group (the secret), it has {}",
                            re.captures_len() - 1
                        )));
                    }
                    Rule::Regex { index, re }
                }
                "file" => Rule::File(
                    globset::GlobBuilder::new(arg)
                        .literal_separator(true)
                        .build()
                        .map_err(|e| bad(format!("not a valid glob: {e}")))?
                        .compile_matcher(),
                ),
                other => {
                    return Err(bad(format!(
                        "unknown kind {:?}: allowed kinds are {RULE_KINDS}",
                        other.chars().take(32).collect::<String>()
                    )));
                }
            };
            custom.push(rule);
        }
        Ok(Rules {
            builtin: Builtin::of(domain),
            custom,
            text: text.trim().to_owned(),
        })
    }

    /// The secrets of one file.
    pub fn find(&self, path: &str, content: &[u8]) -> Found {
        if is_private_key(content)
            || self
                .custom
                .iter()
                .any(|r| matches!(r, Rule::File(g) if g.is_match(path)))
        {
            return Found {
                whole: true,
                spans: Vec::new(),
            };
        }
        let mut spans = match self.builtin {
            Builtin::None => Vec::new(),
            Builtin::Radius => radius(content),
            Builtin::Kea => {
                if may_hold_any(
                    content,
                    &[b"password", b"secret", b"PASSWORD", b"SECRET", b"Password", b"Secret"],
                ) {
                    json(content, &|name| {
                        NamePattern::Suffix("password".into()).matches(name)
                            || NamePattern::Suffix("secret".into()).matches(name)
                    })
                } else {
                    Vec::new()
                }
            }
            Builtin::Unbound => unbound(content),
        };
        for rule in &self.custom {
            match rule {
                Rule::Key { name, re } => {
                    let mut n = 0;
                    for c in re.captures_iter(content) {
                        if let Some(m) = c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)) {
                            spans.push(Span {
                                start: m.start(),
                                end: m.end(),
                                locator: occurrence(name, n),
                            });
                            n += 1;
                        }
                    }
                }
                Rule::Json(p) => spans.extend(json(content, &|name| p.matches(name))),
                Rule::Regex { index, re } => {
                    for (n, c) in re.captures_iter(content).enumerate() {
                        if let Some(m) = c.get(1) {
                            spans.push(Span {
                                start: m.start(),
                                end: m.end(),
                                locator: occurrence(&format!("rule{index}"), n),
                            });
                        }
                    }
                }
                Rule::File(_) => {}
            }
        }
        spans.retain(|s| s.end > s.start);
        spans.sort_by_key(|s| (s.start, s.end));
        let mut out: Vec<Span> = Vec::with_capacity(spans.len());
        for s in spans {
            if out.last().is_none_or(|l| s.start >= l.end) {
                out.push(s);
            }
        }
        Found {
            whole: false,
            spans: out,
        }
    }
}

/// The reason of a multi-line parser message (the regex crate prints the pattern first,
/// with a caret, then `error: ...`).
fn last_line(message: &str) -> &str {
    message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim)
        .unwrap_or(message)
}

fn parse_name_pattern(arg: &str) -> Result<NamePattern, &'static str> {
    let star_start = arg.starts_with('*');
    let star_end = arg.ends_with('*') && arg.len() > 1;
    let core = arg.trim_matches('*');
    if core.is_empty() || core.contains('*') || (star_start && star_end) {
        return Err("a JSON name is NAME, *SUFFIX or PREFIX* (one '*' at one end)");
    }
    Ok(if star_start {
        NamePattern::Suffix(core.to_owned())
    } else if star_end {
        NamePattern::Prefix(core.to_owned())
    } else {
        NamePattern::Exact(core.to_owned())
    })
}

/// `base` for the first occurrence, `base#n` after.
fn occurrence(base: &str, n: usize) -> String {
    if n == 0 { base.to_owned() } else { format!("{base}#{n}") }
}

/// Counts occurrences of locators.
#[derive(Default)]
struct Counter(HashMap<String, usize>);

impl Counter {
    fn next(&mut self, base: String) -> String {
        let n = self.0.entry(base.clone()).or_insert(0);
        let l = occurrence(&base, *n);
        *n += 1;
        l
    }
}

fn may_hold_any(content: &[u8], needles: &[&[u8]]) -> bool {
    needles.iter().any(|n| memmem::find(content, n).is_some())
}

/// A PEM private key block (`-----BEGIN ... PRIVATE KEY-----`), found by content.
pub fn is_private_key(content: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = memmem::find(&content[from..], b"PRIVATE KEY-----") {
        let at = from + i;
        let line_start = content[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        if content[line_start..at].trim_ascii_start().starts_with(b"-----BEGIN ") {
            return true;
        }
        from = at + 1;
    }
    false
}

// --- FreeRADIUS ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Word,
    Quoted,
    Op,
    Open,
    Close,
    Comma,
}

/// One line's tokens; a value after an operator is read whole (bare or quoted).
fn radius_tokens(line: &[u8]) -> Vec<(Tok, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut value_next = false;
    while i < line.len() {
        let b = line[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if b == b'#' {
            break;
        }
        let start = i;
        match b {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < line.len() && line[i] != b {
                    if line[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(line.len());
                out.push((Tok::Quoted, start, i));
                value_next = false;
            }
            b'{' => {
                i += 1;
                out.push((Tok::Open, start, i));
                value_next = false;
            }
            b'}' => {
                i += 1;
                out.push((Tok::Close, start, i));
                value_next = false;
            }
            b',' => {
                i += 1;
                out.push((Tok::Comma, start, i));
                value_next = false;
            }
            _ if value_next => {
                while i < line.len() && !line[i].is_ascii_whitespace() && !b",#{}".contains(&line[i]) {
                    i += 1;
                }
                out.push((Tok::Word, start, i));
                value_next = false;
            }
            b'=' | b':' | b'+' | b'!' | b'<' | b'>' | b'~' | b'-' if is_op_start(line, i) => {
                while i < line.len() && b"=:+!<>~-".contains(&line[i]) {
                    i += 1;
                }
                out.push((Tok::Op, start, i));
                value_next = true;
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() && !b"\"'`{},#=:+!<>~".contains(&line[i]) {
                    i += 1;
                }
                if i == start {
                    i += 1;
                }
                out.push((Tok::Word, start, i));
            }
        }
    }
    out
}

/// An operator starts here (a '-' only when an '=' follows, as in `-=`).
fn is_op_start(line: &[u8], i: usize) -> bool {
    line[i] != b'-' || line.get(i + 1) == Some(&b'=')
}

fn radius(content: &[u8]) -> Vec<Span> {
    if !may_hold_any(
        content,
        &[
            b"secret",
            b"password",
            b"psk_hexphrase",
            b"Cleartext-Password",
            b"cleartext-password",
        ],
    ) {
        return Vec::new();
    }
    let mut spans = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut entry = String::new();
    let mut counter = Counter::default();
    let mut offset = 0;
    for line in content.split(|&b| b == b'\n') {
        let base = offset;
        offset += line.len() + 1;
        let toks = radius_tokens(line);
        if stack.is_empty()
            && let Some(&(Tok::Word, s, e)) = toks.first()
            && s == 0
        {
            // A users-file entry (or a top-level item) starts at column 0.
            entry = String::from_utf8_lossy(&line[s..e]).into_owned();
        }
        let mut stmt_start = 0; // index into toks of the current statement's first token
        for (k, &(kind, _, _)) in toks.iter().enumerate() {
            match kind {
                Tok::Open => {
                    let label: Vec<String> = toks[stmt_start..k]
                        .iter()
                        .take(2)
                        .map(|&(_, a, b)| String::from_utf8_lossy(&line[a..b]).into_owned())
                        .collect();
                    stack.push(label.join(" "));
                    stmt_start = k + 1;
                }
                Tok::Close => {
                    stack.pop();
                    stmt_start = k + 1;
                }
                Tok::Comma => stmt_start = k + 1,
                Tok::Op => {
                    let (Some(&(Tok::Word, ns, ne)), Some(&(vk, vs, ve))) =
                        (k.checked_sub(1).and_then(|p| toks.get(p)), toks.get(k + 1))
                    else {
                        continue;
                    };
                    if !matches!(vk, Tok::Word | Tok::Quoted) {
                        continue;
                    }
                    let name = &line[ns..ne];
                    if !radius_secret(name, &stack) {
                        continue;
                    }
                    let (vs, ve) = if vk == Tok::Quoted && ve - vs >= 2 {
                        (vs + 1, ve - 1)
                    } else {
                        (vs, ve)
                    };
                    let mut path = if stack.is_empty() {
                        entry.clone()
                    } else {
                        stack.join("/")
                    };
                    path.push('/');
                    path.push_str(&String::from_utf8_lossy(name));
                    spans.push(Span {
                        start: base + vs,
                        end: base + ve,
                        locator: counter.next(path),
                    });
                }
                _ => {}
            }
        }
    }
    spans
}

fn radius_secret(name: &[u8], stack: &[String]) -> bool {
    let in_block = |kinds: &[&str]| stack.iter().any(|l| kinds.contains(&l.split(' ').next().unwrap_or("")));
    match name {
        b"secret" => in_block(&["client", "home_server"]),
        b"password" => in_block(&["ldap", "sql", "redis", "rest"]),
        b"private_key_password" | b"psk_hexphrase" => true,
        n => n.eq_ignore_ascii_case(b"Cleartext-Password"),
    }
}

// --- JSON (Kea) ------------------------------------------------------------------------

enum Frame {
    Object {
        key: Option<(usize, usize)>,
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

/// String values of members whose name `secret` accepts, in JSON with `//`, `#` and
/// `/* */` comments. The span is the string's content (inside the quotes).
fn json(content: &[u8], secret: &dyn Fn(&[u8]) -> bool) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    let n = content.len();
    let locator = |stack: &[Frame], content: &[u8]| -> String {
        let mut l = String::new();
        for f in stack {
            l.push('/');
            match f {
                Frame::Object { key: Some((a, b)), .. } => l.push_str(&String::from_utf8_lossy(&content[*a..*b])),
                Frame::Object { key: None, .. } => l.push('?'),
                Frame::Array { index } => l.push_str(&index.to_string()),
            }
        }
        l
    };
    while i < n {
        let b = content[i];
        match b {
            b'/' if content.get(i + 1) == Some(&b'/') => {
                i = memchr::memchr(b'\n', &content[i..]).map_or(n, |p| i + p);
            }
            b'#' => i = memchr::memchr(b'\n', &content[i..]).map_or(n, |p| i + p),
            b'/' if content.get(i + 1) == Some(&b'*') => {
                i = memmem::find(&content[i + 2..], b"*/").map_or(n, |p| i + 2 + p + 2);
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < n && content[j] != b'"' {
                    if content[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                let end = j.min(n);
                i = (j + 1).min(n);
                match stack.last_mut() {
                    Some(Frame::Object { key, expect_key }) if *expect_key => {
                        *key = Some((start, end));
                        *expect_key = false;
                    }
                    Some(Frame::Object { key: Some((a, b)), .. }) if end > start && secret(&content[*a..*b]) => {
                        spans.push(Span {
                            start,
                            end,
                            locator: locator(&stack, content),
                        });
                    }
                    _ => {}
                }
            }
            b'{' => {
                stack.push(Frame::Object {
                    key: None,
                    expect_key: true,
                });
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array { index: 0 });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Object { key, expect_key }) => {
                        *key = None;
                        *expect_key = true;
                    }
                    Some(Frame::Array { index }) => *index += 1,
                    None => {}
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    spans
}

// --- Unbound ---------------------------------------------------------------------------

const UNBOUND_KEYS: [&[u8]; 3] = [b"cookie-secret", b"tls-session-ticket-keys", b"redis-server-password"];

fn unbound(content: &[u8]) -> Vec<Span> {
    if !may_hold_any(content, &UNBOUND_KEYS) {
        return Vec::new();
    }
    let mut spans = Vec::new();
    let mut counter = Counter::default();
    let mut offset = 0;
    for line in content.split(|&b| b == b'\n') {
        let base = offset;
        offset += line.len() + 1;
        let lead = line.len() - line.trim_ascii_start().len();
        let rest = &line[lead..];
        let Some(key) = UNBOUND_KEYS
            .iter()
            .find(|k| rest.starts_with(k) && rest.get(k.len()) == Some(&b':'))
        else {
            continue;
        };
        let mut s = lead + key.len() + 1;
        while s < line.len() && (line[s] == b' ' || line[s] == b'\t') {
            s += 1;
        }
        let (vs, ve) = if matches!(line.get(s), Some(b'"') | Some(b'\'')) {
            let q = line[s];
            match memchr::memchr(q, &line[s + 1..]) {
                Some(p) => (s + 1, s + 1 + p),
                None => (s + 1, line.len()),
            }
        } else {
            let end = memchr::memchr(b'#', &line[s..]).map_or(line.len(), |p| s + p);
            let mut e = end;
            while e > s && line[e - 1].is_ascii_whitespace() {
                e -= 1;
            }
            (s, e)
        };
        if ve > vs {
            spans.push(Span {
                start: base + vs,
                end: base + ve,
                locator: counter.next(String::from_utf8_lossy(key).into_owned()),
            });
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(rules: &Rules, text: &str) -> Vec<(String, String)> {
        rules
            .find("f", text.as_bytes())
            .spans
            .into_iter()
            .map(|s| (text[s.start..s.end].to_owned(), s.locator))
            .collect()
    }

    #[test]
    fn radius_client_and_home_server_secrets_and_module_passwords_are_found() {
        let r = Rules::parse(Domain::Radius, "").unwrap();
        let text = "client localhost {\n\tipaddr = 127.0.0.1\n\tsecret = testing123\n}\n\
                    client 10.0.0.0/8 { secret = \"two words\" }\n\
                    home_server hs1 {\n secret = hs # comment\n}\n\
                    modules {\n ldap {\n  password = \"ldap-pw\"\n }\n}\n\
                    tls { private_key_password = whatever\n psk_hexphrase = 0a0b }\n\
                    secret = not-in-a-client\n\
                    bob Cleartext-Password := \"hello\", Reply-Message = \"hi\"\n";
        assert_eq!(
            values(&r, text),
            vec![
                ("testing123".into(), "client localhost/secret".into()),
                ("two words".into(), "client 10.0.0.0/8/secret".into()),
                ("hs".into(), "home_server hs1/secret".into()),
                ("ldap-pw".into(), "modules/ldap/password".into()),
                ("whatever".into(), "tls/private_key_password".into()),
                ("0a0b".into(), "tls/psk_hexphrase".into()),
                ("hello".into(), "bob/Cleartext-Password".into()),
            ]
        );
    }

    #[test]
    fn kea_members_ending_in_password_or_secret_are_found() {
        let r = Rules::parse(Domain::Kea, "").unwrap();
        let text = r#"{ // comment with "password": "no"
  "Dhcp4": { "lease-database": { "type": "mysql", "password": "db-pw" },
    /* "secret": "no" */ "hooks-libraries": [ { "parameters": { "high-availability": [ { "peers": [
      { "name": "a", "basic-auth-password": "ha-pw" } ] } ] } } ],
    "tsig-keys": [ { "name": "k", "secret": "c2VjcmV0" }, { "name": "k2", "Secret": "x" } ] } }"#;
        let found = values(&r, text);
        assert_eq!(
            found.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
            ["db-pw", "ha-pw", "c2VjcmV0", "x"]
        );
        assert_eq!(found[0].1, "/Dhcp4/lease-database/password");
        assert_eq!(found[3].1, "/Dhcp4/tsig-keys/1/Secret");
    }

    #[test]
    fn unbound_secrets_are_found() {
        let r = Rules::parse(Domain::Dns, "").unwrap();
        let text = "server:\n  cookie-secret: \"000102\"\n  tls-session-ticket-keys: /etc/k # c\ncachedb:\n  redis-server-password: pw\n  verbosity: 1\n";
        assert_eq!(
            values(&r, text).into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
            ["000102", "/etc/k", "pw"]
        );
    }

    #[test]
    fn a_private_key_is_found_by_content() {
        let r = Rules::parse(Domain::Gateway, "").unwrap();
        assert!(
            r.find("x.txt", b"junk\n-----BEGIN OPENSSH PRIVATE KEY-----\nAAA\n")
                .whole
        );
        assert!(r.find("y", b"  -----BEGIN RSA PRIVATE KEY-----\n").whole);
        assert!(!r.find("z", b"-----BEGIN PUBLIC KEY-----\nPRIVATE KEY-----").whole);
    }

    #[test]
    fn operator_rules_add_secrets() {
        let r = Rules::parse(
            Domain::Gateway,
            r#"key:auth-token; json:*_token; regex:psk "([^"]+)"; file:scripts/gateway/*.key"#,
        )
        .unwrap();
        let text = "auth-token = abc\nx: {\"api_token\": \"t\"}\nset psk \"p1\"\nmy-auth-token = no\n";
        assert_eq!(
            values(&r, text),
            vec![
                ("abc".into(), "auth-token".into()),
                ("t".into(), "/api_token".into()),
                ("p1".into(), "rule3".into()),
            ]
        );
        assert!(r.find("scripts/gateway/a.key", b"x").whole);
        assert!(!r.find("scripts/gateway/sub/a.key", b"x").whole);
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule() {
        for (text, says) in [
            ("nokind", "no kind"),
            ("foo:bar", "unknown kind"),
            ("key:", "empty"),
            ("key:a b", "letters"),
            ("regex:(a)(b)", "exactly one capture group"),
            ("regex:(", "not a valid regular expression"),
            ("json:*a*", "one '*'"),
            ("file:[", "not a valid glob"),
        ] {
            let e = Rules::parse(Domain::Dns, text).unwrap_err();
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }
}
