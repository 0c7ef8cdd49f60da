//! Proto3 JSON as the shim writes it: proto field names (pbjson's serde), and timestamps
//! Z-normalised (pbjson writes `+00:00`; proto3 JSON and grpc-gateway write `Z`).
//!
//! Two forms with one rule: [`to_json`] gives a `serde_json::Value` (for a message wrapped
//! in more JSON, as the streams' lines are), and [`to_json_vec`] the bytes of an answer,
//! rewritten in one pass over the serialised text instead of through a `Value` tree (a
//! page of History is 100 rows: the tree was most of the shim's own time). A string
//! value is rewritten exactly when it is an RFC 3339 UTC time ending `+00:00`; the tests
//! hold both forms to the same output.

use serde::Serialize;

/// Whether `stem` (a string value without its `+00:00`) is an RFC 3339 date and time:
/// then it came from a Timestamp field.
fn is_time(stem: &str) -> bool {
    stem.len() >= 19 && chrono::NaiveDateTime::parse_from_str(stem, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

/// Rewrites every string of `v` that is exactly an RFC 3339 UTC time with `+00:00` to end
/// in `Z`; nothing else changes.
pub fn z_normalize(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(stem) = s.strip_suffix("+00:00")
                && is_time(stem)
            {
                *s = format!("{stem}Z");
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(z_normalize),
        serde_json::Value::Object(map) => map.values_mut().for_each(z_normalize),
        _ => {}
    }
}

/// A message as proto3 JSON, as a `Value`.
pub fn to_json<T: Serialize>(msg: &T) -> Result<serde_json::Value, serde_json::Error> {
    let mut v = serde_json::to_value(msg)?;
    z_normalize(&mut v);
    Ok(v)
}

/// A message as proto3 JSON, as the bytes `serde_json::to_vec(&to_json(msg)?)` gives.
pub fn to_json_vec<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    // serde_json's compact form: no whitespace between tokens, map order kept.
    Ok(z_normalize_text(serde_json::to_vec(msg)?))
}

/// [`z_normalize`] on compact serialised JSON. A time string holds no quote or
/// backslash, so a candidate `…+00:00"` is a whole string value exactly when the quote
/// before it opens a value: it follows `:`, `,` or `[` (inside a string a quote is
/// escaped, `\"`), and the string is not an object's key (no `:` after it; `z_normalize`
/// leaves keys alone).
fn z_normalize_text(text: Vec<u8>) -> Vec<u8> {
    const SUFFIX: &[u8] = b"+00:00\"";
    // The longest time string: `YYYY-MM-DDTHH:MM:SS.fffffffff`.
    const LONGEST: usize = 29;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut from = 0;
    let suffix = memchr::memmem::Finder::new(SUFFIX);
    while let Some(at) = suffix.find(&text[from..]).map(|p| from + p) {
        // No match overlaps another: the suffix holds one `+`, at its start.
        from = at + SUFFIX.len();
        let window = at.saturating_sub(LONGEST + 1);
        let Some(open) = text[window..at].iter().rposition(|b| *b == b'"').map(|p| window + p) else {
            continue;
        };
        let opens_value = open > 0 && matches!(text[open - 1], b':' | b',' | b'[');
        let is_key = text.get(at + SUFFIX.len()) == Some(&b':');
        let stem = std::str::from_utf8(&text[open + 1..at]).unwrap_or("");
        if opens_value && !is_key && is_time(stem) {
            let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
            out.extend_from_slice(&text[copied..at]);
            out.extend_from_slice(b"Z\"");
            copied = at + SUFFIX.len();
        }
    }
    match out {
        Some(mut out) => {
            out.extend_from_slice(&text[copied..]);
            out
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn both(v: &serde_json::Value) -> (Vec<u8>, Vec<u8>) {
        let tree = serde_json::to_vec(&to_json(v).unwrap()).unwrap();
        (tree, to_json_vec(v).unwrap())
    }

    #[test]
    fn timestamps_are_z_normalised_and_nothing_else_changes() {
        let v = json!({
            "at": "2026-11-26T05:20:21.889943+00:00",
            "x": ["2026-11-26T05:20:21+00:00", "2026-11-26T05:20:21.123456789+00:00"],
            "m": "ends +00:00",
            "q": "said \"2026-11-26T05:20:21+00:00\"",
            "2026-11-26T05:20:21+00:00": "a key is left alone",
            "n": "no 2026-11-26T05:20:21+00:00",
            "nested": {"t": [{"u": "2026-01-01T00:00:00+00:00"}]},
        });
        let mut tree = v.clone();
        z_normalize(&mut tree);
        assert_eq!(tree["at"], "2026-11-26T05:20:21.889943Z");
        assert_eq!(
            tree["x"],
            json!(["2026-11-26T05:20:21Z", "2026-11-26T05:20:21.123456789Z"])
        );
        assert_eq!(tree["m"], "ends +00:00");
        assert_eq!(tree["q"], "said \"2026-11-26T05:20:21+00:00\"");
        assert_eq!(tree["2026-11-26T05:20:21+00:00"], "a key is left alone");
        assert_eq!(tree["nested"]["t"][0]["u"], "2026-01-01T00:00:00Z");
        let (a, b) = both(&v);
        assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("2026-11-26T05:20:21+00:00".to_owned()),
            Just("2026-11-26T05:20:21.5+00:00".to_owned()),
            Just("+00:00".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just(":".to_owned()),
            Just(",[".to_owned()),
            "[ -~]{0,6}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(piece(), 0..5).prop_map(|v| v.concat())
    }

    proptest! {
        /// Any strings, as values, in arrays and as keys: the one-pass rewrite gives the
        /// bytes the `Value` tree gives.
        #[test]
        fn the_text_rewrite_and_the_tree_agree(a in text(), b in text(), k in text()) {
            let v = json!({ k.clone(): a.clone(), "l": [a, b.clone(), {"k": b}] });
            let (tree, text) = both(&v);
            prop_assert_eq!(String::from_utf8(tree).unwrap(), String::from_utf8(text).unwrap());
        }
    }
}
