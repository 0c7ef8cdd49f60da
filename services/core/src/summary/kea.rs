//! Kea's configuration (JSON with `//`, `#` and `/* */` comments): subnets by prefix
//! (also inside shared networks), their reservations, pools and option-data, the global
//! option-data and the other global parameters. A small tolerant reader of its own: the
//! engine knows nothing of JSON libraries, and this one never panics (depth-bounded).

use super::Item;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn list(&self, key: &str) -> &[Value] {
        match self.get(key) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }

    /// A canonical text of the value (map keys sorted), for comparing.
    fn text(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Num(n) => n.clone(),
            Value::Str(s) => format!("{s:?}"),
            Value::List(l) => format!("[{}]", l.iter().map(Value::text).collect::<Vec<_>>().join(",")),
            Value::Map(m) => {
                let mut parts: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{}", v.text())).collect();
                parts.sort();
                format!("{{{}}}", parts.join(","))
            }
        }
    }

    fn str(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::Str(s) => Some(s.clone()),
            Value::Num(n) => Some(n.clone()),
            _ => None,
        }
    }
}

pub(super) fn items(text: &str) -> Option<Vec<Item<'_>>> {
    let clean = strip_comments(text);
    let mut p = Parser {
        s: clean.as_bytes(),
        i: 0,
    };
    let root = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return None;
    }
    let mut out = Vec::new();
    let Value::Map(top) = &root else { return None };
    for (daemon, cfg) in top {
        let Value::Map(params) = cfg else { continue };
        for (k, v) in params {
            match k.as_str() {
                "subnet4" | "subnet6" => subnets(v, &mut out),
                "shared-networks" => {
                    if let Value::List(nets) = v {
                        for n in nets {
                            subnets(
                                n.get("subnet4").or_else(|| n.get("subnet6")).unwrap_or(&Value::Null),
                                &mut out,
                            );
                        }
                    }
                }
                "option-data" => options(v, "global", &mut out),
                "reservations" => reservations(v, "global", &mut out),
                other => out.push(Item::new("option", daemon.as_str(), other.to_owned(), short_text(v))),
            }
        }
    }
    Some(out)
}

fn short_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => other.text(),
    }
}

fn subnets(list: &Value, out: &mut Vec<Item>) {
    let Value::List(list) = list else { return };
    for s in list {
        let Value::Map(fields) = s else { continue };
        let prefix = s.str("subnet").unwrap_or_else(|| "?".into());
        let rest: Vec<(String, Value)> = fields
            .iter()
            .filter(|(k, _)| !["reservations", "pools", "option-data"].contains(&k.as_str()))
            .cloned()
            .collect();
        out.push(Item::new("subnet", "", prefix.clone(), Value::Map(rest).text()));
        reservations(s.get("reservations").unwrap_or(&Value::Null), &prefix, out);
        options(s.get("option-data").unwrap_or(&Value::Null), &prefix, out);
        for pool in s.list("pools") {
            let name = pool.str("pool").unwrap_or_else(|| pool.text());
            out.push(Item::new("pool", prefix.clone(), name, pool.text()));
        }
    }
}

fn reservations(list: &Value, scope: &str, out: &mut Vec<Item>) {
    let Value::List(list) = list else { return };
    for r in list {
        let id = ["hw-address", "client-id", "duid", "circuit-id", "flex-id", "ip-address"]
            .iter()
            .find_map(|k| r.str(k).map(|v| format!("{k} {v}")))
            .unwrap_or_else(|| r.text());
        out.push(Item::new("reservation", scope, id, r.text()));
    }
}

fn options(list: &Value, scope: &str, out: &mut Vec<Item>) {
    let Value::List(list) = list else { return };
    for o in list {
        let name = o.str("name").or_else(|| o.str("code")).unwrap_or_else(|| o.text());
        out.push(Item::new("option-data", scope, name, o.text()));
    }
}

/// JSON text without Kea's comments (outside strings); strings are kept as they are.
fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.extend_from_slice(&b[start..i]);
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i = (i + 2).min(b.len());
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut m = Vec::new();
                if self.eat(b'}') {
                    return Some(Value::Map(m));
                }
                loop {
                    self.ws();
                    let Value::Str(k) = self.string()? else { return None };
                    if !self.eat(b':') {
                        return None;
                    }
                    m.push((k, self.value(depth + 1)?));
                    if self.eat(b',') {
                        // Kea tolerates a trailing comma.
                        if self.eat(b'}') {
                            return Some(Value::Map(m));
                        }
                        continue;
                    }
                    return self.eat(b'}').then_some(Value::Map(m));
                }
            }
            b'[' => {
                self.i += 1;
                let mut l = Vec::new();
                if self.eat(b']') {
                    return Some(Value::List(l));
                }
                loop {
                    l.push(self.value(depth + 1)?);
                    if self.eat(b',') {
                        if self.eat(b']') {
                            return Some(Value::List(l));
                        }
                        continue;
                    }
                    return self.eat(b']').then_some(Value::List(l));
                }
            }
            b'"' => self.string(),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && !b",]} \t\r\n".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                match word {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    "null" => Some(Value::Null),
                    w if !w.is_empty() && w.parse::<f64>().is_ok() => Some(Value::Num(w.to_owned())),
                    _ => None,
                }
            }
        }
    }

    fn string(&mut self) -> Option<Value> {
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let start = self.i;
        while *self.s.get(self.i)? != b'"' {
            self.i += if self.s[self.i] == b'\\' { 2 } else { 1 };
        }
        let text = String::from_utf8_lossy(self.s.get(start..self.i)?).into_owned();
        self.i += 1;
        Some(Value::Str(text))
    }
}
