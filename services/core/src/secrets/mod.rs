//! Secret sealing: secret values in configuration files are stored in the working copy
//! and on the remote only encrypted, inside otherwise readable files
//! (`secret = ENC[v1,<key id>,<locator>,<base64url>]`); a file holding a private key is
//! stored encrypted whole (a `CONFIG-BACKUP SEALED FILE` block).
//!
//! - Cipher: XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`, audited). The nonce is
//!   synthetic, an HMAC-SHA256 of the associated data and the plaintext under a key of
//!   its own (the SIV construction): sealing is deterministic, so an unchanged secret
//!   keeps its ciphertext and a no-change day commits the parent's tree; two different
//!   plaintexts never share a nonce.
//! - Associated data: the file's path and the value's locator (its block path and key,
//!   or JSON path), so one secret in two places seals to two ciphertexts, and a sealed
//!   value moved elsewhere does not open.
//! - Every hash the service publishes (manifests, commit messages, audit rows, History,
//!   mail) is computed over the sealed form, whose secrets are keyed: no guess of a
//!   secret can be checked against it without the key.
//! - Unsealing needs no rule: the sealed form says where each sealed value is. A value
//!   sealed with a key that the key file no longer holds is a loud error, never a
//!   silent plaintext.
//!
//! Architecture invariant: no clear secret leaves the site's working tree. Plaintext
//! exists only in the live files, in a rollback's validation staging directory (mode
//! 0700, removed afterwards) and in the bytes written back to the live files.

pub mod checkout;
pub mod detect;
pub mod key;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use chacha20poly1305::XNonce;
use chacha20poly1305::aead::{Aead, Payload};
use memchr::memmem;

use crate::domain::Domain;
pub use detect::{BadRule, Rules};
pub use key::{Key, KeyFileError, Keyring};

/// The commit trailer naming the key that sealed a commit's files (`v1 <key id>`): a
/// commit without it was made before sealing, and may hold secrets in clear.
pub const TRAILER_SEALED: &str = "Config-Backup-Sealed";
/// The start of a sealed value.
pub const TOKEN_PREFIX: &[u8] = b"ENC[v1,";
/// The first line of a file sealed whole.
pub const FILE_BEGIN: &str = "-----BEGIN CONFIG-BACKUP SEALED FILE-----";
/// The last line of a file sealed whole.
pub const FILE_END: &str = "-----END CONFIG-BACKUP SEALED FILE-----";
/// The locator of a file sealed whole.
const WHOLE_FILE: &str = "(file)";
const AD_CONTEXT: &[u8] = b"config-backup sealed value v1";

/// Why sealed content cannot be opened (or content cannot be sealed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Sealed with a key the key file does not hold.
    #[error(
        "{path}: sealed with secrets key {key_id}, which the key file does not hold (it holds {held}): \
         restore the key file from its backup (docs/operations.md, \"The secrets key\")"
    )]
    UnknownKey {
        /// The file.
        path: String,
        /// The key id in the sealed value.
        key_id: String,
        /// The ids held.
        held: String,
    },
    /// A sealed value does not authenticate: altered, or moved from another place.
    #[error("{path}: the sealed value at {locator} does not open with key {key_id}: it was altered or moved")]
    Forged {
        /// The file.
        path: String,
        /// Where in it.
        locator: String,
        /// The key id.
        key_id: String,
    },
    /// Not a well-formed sealed value.
    #[error("{path}: a malformed sealed value at byte {offset}")]
    Malformed {
        /// The file.
        path: String,
        /// Where.
        offset: usize,
    },
}

/// Seals and unseals files: the keyring and each domain's rules.
#[derive(Debug)]
pub struct Sealer {
    keys: Keyring,
    rules: BTreeMap<Domain, Rules>,
    /// No built-in rules beyond private keys: for paths of no known domain.
    fallback: Rules,
}

/// One sealed value, parsed.
struct Token<'a> {
    start: usize,
    end: usize,
    key_id: &'a str,
    locator: &'a str,
    payload: &'a [u8],
}

fn encode_locator(l: &str) -> String {
    let mut out = String::with_capacity(l.len());
    for b in l.bytes() {
        if b.is_ascii_alphanumeric() || b"_./:@+-#?".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn associated_data(path: &str, locator: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_CONTEXT.len() + path.len() + locator.len() + 2);
    ad.extend_from_slice(AD_CONTEXT);
    ad.push(0);
    ad.extend_from_slice(path.as_bytes());
    ad.push(0);
    ad.extend_from_slice(locator.as_bytes());
    ad
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// Whether content is (or holds) sealed values.
pub fn is_sealed(content: &[u8]) -> bool {
    content.starts_with(FILE_BEGIN.as_bytes()) || memmem::find(content, TOKEN_PREFIX).is_some()
}

/// Whether content is a file sealed whole.
pub fn is_sealed_file(content: &[u8]) -> bool {
    content.starts_with(FILE_BEGIN.as_bytes())
}

/// The sealed values of `content`, in order.
fn tokens<'a>(path: &str, content: &'a [u8]) -> Result<Vec<Token<'a>>, SealError> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = memmem::find(&content[from..], TOKEN_PREFIX) {
        let start = from + i;
        let malformed = || SealError::Malformed {
            path: path.to_owned(),
            offset: start,
        };
        let body_start = start + TOKEN_PREFIX.len();
        let close = memchr::memchr(b']', &content[body_start..]).ok_or_else(malformed)?;
        let body = &content[body_start..body_start + close];
        let mut parts = body.splitn(3, |&b| b == b',');
        let (Some(kid), Some(loc), Some(payload)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed());
        };
        let (Ok(key_id), Ok(locator)) = (std::str::from_utf8(kid), std::str::from_utf8(loc)) else {
            return Err(malformed());
        };
        if key_id.len() != 8 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        let end = body_start + close + 1;
        out.push(Token {
            start,
            end,
            key_id,
            locator,
            payload,
        });
        from = end;
    }
    Ok(out)
}

impl Sealer {
    /// A sealer with these keys and per-domain rules (domains without rules get the
    /// built-in ones).
    pub fn new(keys: Keyring, mut rules: BTreeMap<Domain, Rules>) -> Sealer {
        for d in Domain::ALL {
            rules
                .entry(d)
                .or_insert_with(|| Rules::parse(d, "").expect("empty rules parse"));
        }
        Sealer {
            keys,
            rules,
            fallback: Rules {
                builtin: detect::Builtin::None,
                custom: Vec::new(),
                text: String::new(),
            },
        }
    }

    /// The keyring.
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// What sealing a domain's files depends on: the sealing key and the domain's rules.
    /// A stat cache made under another fingerprint is not trusted (a key rotation or a
    /// new rule re-seals every file).
    pub fn fingerprint(&self, domain: Domain) -> String {
        use sha2::Digest;
        let rules = self.rules.get(&domain).map(|r| r.text.as_str()).unwrap_or("");
        let h = sha2::Sha256::digest(rules.as_bytes());
        format!("{}-{}", self.keys.sealing().id(), &hex::encode(h)[..16])
    }

    /// A keyed digest of a file's clear content (HMAC-SHA256 under the sealing key's nonce
    /// subkey): the stat cache keeps it, so a file read again whose digest is the one it
    /// had needs no sealing to know its stored form, and the cache file never holds a
    /// hash of clear secrets that could be checked against guesses.
    pub fn clear_digest(&self, path: &str, content: &[u8]) -> [u8; 32] {
        self.keys.sealing().content_digest(path.as_bytes(), content)
    }

    fn rules_for(&self, domain: Option<Domain>) -> &Rules {
        domain.and_then(|d| self.rules.get(&d)).unwrap_or(&self.fallback)
    }

    fn encrypt(&self, path: &str, locator: &str, plaintext: &[u8]) -> Vec<u8> {
        let key = self.keys.sealing();
        let ad = associated_data(path, locator);
        let nonce = key.synthetic_nonce(&[&ad, plaintext]);
        let ct = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length a file can have");
        let mut out = Vec::with_capacity(nonce.len() + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    fn decrypt(&self, path: &str, key_id: &str, locator: &str, data: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.keys.get(key_id).ok_or_else(|| SealError::UnknownKey {
            path: path.to_owned(),
            key_id: key_id.to_owned(),
            held: self.keys.ids().join(", "),
        })?;
        let forged = || SealError::Forged {
            path: path.to_owned(),
            locator: locator.to_owned(),
            key_id: key_id.to_owned(),
        };
        if data.len() < 24 + 16 {
            return Err(forged());
        }
        let ad = associated_data(path, locator);
        let nonce: [u8; 24] = data[..24].try_into().map_err(|_| forged())?;
        key.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &data[24..],
                    aad: &ad,
                },
            )
            .map_err(|_| forged())
    }

    /// The form of a file that is stored: its secret values sealed in place, or the
    /// whole file sealed (a private key, a `file:` rule, or content that already looks
    /// sealed, which could not be told apart from a sealed value otherwise). Content
    /// without secrets is returned as it is.
    pub fn seal<'c>(&self, domain: Option<Domain>, path: &str, content: &'c [u8]) -> Cow<'c, [u8]> {
        if is_sealed(content) {
            return Cow::Owned(self.seal_whole(path, content));
        }
        let found = self.rules_for(domain).find(path, content);
        if found.whole {
            return Cow::Owned(self.seal_whole(path, content));
        }
        if found.spans.is_empty() {
            return Cow::Borrowed(content);
        }
        let kid = self.keys.sealing().id();
        let mut out = Vec::with_capacity(content.len() + found.spans.len() * 96);
        let mut at = 0;
        for s in &found.spans {
            out.extend_from_slice(&content[at..s.start]);
            let locator = encode_locator(&s.locator);
            let sealed = self.encrypt(path, &locator, &content[s.start..s.end]);
            out.extend_from_slice(TOKEN_PREFIX);
            out.extend_from_slice(kid.as_bytes());
            out.push(b',');
            out.extend_from_slice(locator.as_bytes());
            out.push(b',');
            let start = out.len();
            out.resize(start + base64::encoded_len(sealed.len(), false).unwrap_or(0), 0);
            let written = b64()
                .encode_slice(&sealed, &mut out[start..])
                .expect("the buffer has the encoded length");
            out.truncate(start + written);
            out.push(b']');
            at = s.end;
        }
        out.extend_from_slice(&content[at..]);
        Cow::Owned(out)
    }

    fn seal_whole(&self, path: &str, content: &[u8]) -> Vec<u8> {
        let sealed = self.encrypt(path, WHOLE_FILE, content);
        let text = base64::engine::general_purpose::STANDARD.encode(sealed);
        let mut out = format!("{FILE_BEGIN}\nv1,{}\n", self.keys.sealing().id());
        for chunk in text.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str(FILE_END);
        out.push('\n');
        out.into_bytes()
    }

    /// The original bytes of a stored file. Content that was never sealed (history from
    /// before sealing) is returned as it is.
    pub fn unseal<'c>(&self, path: &str, content: &'c [u8]) -> Result<Cow<'c, [u8]>, SealError> {
        if is_sealed_file(content) {
            return self.unseal_whole(path, content).map(Cow::Owned);
        }
        let toks = tokens(path, content)?;
        if toks.is_empty() {
            return Ok(Cow::Borrowed(content));
        }
        let mut out = Vec::with_capacity(content.len());
        let mut at = 0;
        for t in &toks {
            out.extend_from_slice(&content[at..t.start]);
            let data = b64().decode(t.payload).map_err(|_| SealError::Malformed {
                path: path.to_owned(),
                offset: t.start,
            })?;
            out.extend_from_slice(&self.decrypt(path, t.key_id, t.locator, &data)?);
            at = t.end;
        }
        out.extend_from_slice(&content[at..]);
        Ok(Cow::Owned(out))
    }

    fn unseal_whole(&self, path: &str, content: &[u8]) -> Result<Vec<u8>, SealError> {
        let malformed = |offset| SealError::Malformed {
            path: path.to_owned(),
            offset,
        };
        let text = std::str::from_utf8(content).map_err(|_| malformed(0))?;
        let mut lines = text.lines();
        lines.next(); // FILE_BEGIN
        let header = lines.next().ok_or_else(|| malformed(FILE_BEGIN.len()))?;
        let key_id = header.strip_prefix("v1,").ok_or_else(|| malformed(FILE_BEGIN.len()))?;
        let mut b = String::new();
        let mut ended = false;
        for l in lines {
            if l == FILE_END {
                ended = true;
                break;
            }
            b.push_str(l.trim());
        }
        if !ended {
            return Err(malformed(content.len()));
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(b.as_bytes())
            .map_err(|_| malformed(FILE_BEGIN.len()))?;
        self.decrypt(path, key_id, WHOLE_FILE, &data)
    }

    /// The key ids that sealed values of `content` name (for the start-up check that the
    /// key file can open the repository).
    pub fn key_ids_in(content: &[u8]) -> Vec<String> {
        if is_sealed_file(content) {
            return std::str::from_utf8(content)
                .ok()
                .and_then(|t| t.lines().nth(1))
                .and_then(|h| h.strip_prefix("v1,"))
                .map(|k| vec![k.to_owned()])
                .unwrap_or_default();
        }
        let mut ids: Vec<String> = tokens("", content)
            .unwrap_or_default()
            .iter()
            .map(|t| t.key_id.to_owned())
            .collect();
        ids.dedup();
        ids
    }

    /// The plaintext of each sealed value of `content`, by locator (values that cannot
    /// be opened are left out).
    fn opened(&self, path: &str, content: &[u8]) -> HashMap<String, Vec<u8>> {
        let mut out = HashMap::new();
        for t in tokens(path, content).unwrap_or_default() {
            if let Ok(data) = b64().decode(t.payload)
                && let Ok(p) = self.decrypt(path, t.key_id, t.locator, &data)
            {
                out.insert(t.locator.to_owned(), p);
            }
        }
        out
    }

    /// The secret values of a file (plaintext), to scrub from command output: the value
    /// spans, or each long line of a file that is a secret whole. Values shorter than 4
    /// bytes are left out (they would blank out ordinary words).
    pub fn secret_values(&self, domain: Domain, path: &str, content: &[u8]) -> Vec<String> {
        let found = self.rules_for(Some(domain)).find(path, content);
        let values: Vec<&[u8]> = if found.whole {
            content
                .split(|&b| b == b'\n')
                .map(|l| l.trim_ascii())
                .filter(|l| l.len() >= 16 && !l.starts_with(b"-----"))
                .collect()
        } else {
            found.spans.iter().map(|s| &content[s.start..s.end]).collect()
        };
        values
            .into_iter()
            .filter(|v| v.len() >= 4)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// A unified patch between two sealed forms of `path`, for readers: every sealed
    /// value becomes a placeholder that says whether the secret changed («secret
    /// changed», «secret unchanged», «secret added», «secret removed»; «secret» on
    /// context lines). The plaintext is compared here and never shown.
    pub fn redact_patch(&self, path: &str, old: &[u8], new: &[u8], patch: &str) -> String {
        if !patch.contains(std::str::from_utf8(TOKEN_PREFIX).expect("ASCII")) {
            return patch.to_owned();
        }
        let (before, after) = (self.opened(path, old), self.opened(path, new));
        let mut out = String::with_capacity(patch.len());
        for line in patch.split_inclusive('\n') {
            let sign = line.as_bytes().first().copied().unwrap_or(b' ');
            let is_header = line.starts_with("+++ ") || line.starts_with("--- ");
            let bytes = line.as_bytes();
            let toks = tokens(path, bytes).unwrap_or_default();
            if toks.is_empty() || is_header {
                out.push_str(line);
                continue;
            }
            let mut at = 0;
            for t in &toks {
                out.push_str(&line[at..t.start]);
                let (mine, theirs) = match sign {
                    b'+' => (after.get(t.locator), before.get(t.locator)),
                    b'-' => (before.get(t.locator), after.get(t.locator)),
                    _ => (None, None),
                };
                let word = match (sign, mine, theirs) {
                    (b'+' | b'-', None, _) => "«secret (cannot be opened)»",
                    (b'+', Some(_), None) => "«secret added»",
                    (b'-', Some(_), None) => "«secret removed»",
                    (b'+' | b'-', Some(a), Some(b)) if a == b => "«secret unchanged»",
                    (b'+' | b'-', Some(_), Some(_)) => "«secret changed»",
                    _ => "«secret»",
                };
                out.push_str(word);
                at = t.end;
            }
            out.push_str(&line[at..]);
        }
        out
    }
}

/// `text` with every one of `secrets` replaced by «secret» (longest first).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    sorted.dedup();
    let mut out = text.to_owned();
    for s in sorted {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "«secret»");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_output_is_scrubbed_of_a_files_secrets() {
        let s = sealer();
        let values = s.secret_values(Domain::Radius, "p", CLIENTS.as_bytes());
        assert_eq!(values, ["same-secret", "same-secret"]);
        let out = scrub("line 3: secret = same-secret is bad; sec", &values);
        assert_eq!(out, "line 3: secret = «secret» is bad; sec");
    }

    fn sealer() -> Sealer {
        Sealer::new(Keyring::parse(&Keyring::new_key_line()).unwrap(), BTreeMap::new())
    }

    const CLIENTS: &str = "client a {\n\tsecret = same-secret\n}\nclient b {\n\tsecret = \"same-secret\"\n}\n";

    #[test]
    fn sealing_hides_secrets_keeps_the_rest_and_unseals_byte_for_byte() {
        let s = sealer();
        let sealed = s.seal(Some(Domain::Radius), "config/radius/clients.conf", CLIENTS.as_bytes());
        let text = String::from_utf8(sealed.to_vec()).unwrap();
        assert!(!text.contains("same-secret"), "{text}");
        assert!(text.contains("client a {\n\tsecret = ENC[v1,"));
        assert!(text.contains("\tsecret = \"ENC[v1,"), "quotes stay: {text}");
        let back = s.unseal("config/radius/clients.conf", &sealed).unwrap();
        assert_eq!(back.as_ref(), CLIENTS.as_bytes());
    }

    #[test]
    fn one_secret_in_two_places_seals_to_two_ciphertexts_and_sealing_is_deterministic() {
        let s = sealer();
        let a = s.seal(Some(Domain::Radius), "p", CLIENTS.as_bytes()).to_vec();
        let toks: Vec<_> = tokens("p", &a).unwrap().iter().map(|t| t.payload.to_vec()).collect();
        assert_eq!(toks.len(), 2);
        assert_ne!(toks[0], toks[1]);
        assert_eq!(a, s.seal(Some(Domain::Radius), "p", CLIENTS.as_bytes()).to_vec());
        // The same file at another path seals differently.
        assert_ne!(a, s.seal(Some(Domain::Radius), "q", CLIENTS.as_bytes()).to_vec());
        // Another key seals differently.
        assert_ne!(a, sealer().seal(Some(Domain::Radius), "p", CLIENTS.as_bytes()).to_vec());
    }

    #[test]
    fn a_private_key_file_is_sealed_whole() {
        let s = sealer();
        let pem = b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n";
        let sealed = s.seal(Some(Domain::Gateway), "k.pem", pem);
        assert!(is_sealed_file(&sealed));
        assert!(memmem::find(&sealed, b"MIIEvQ").is_none());
        assert_eq!(s.unseal("k.pem", &sealed).unwrap().as_ref(), pem);
    }

    #[test]
    fn content_that_looks_sealed_is_sealed_whole_and_comes_back_exactly() {
        let s = sealer();
        for odd in [&b"x = ENC[v1,abc]"[..], FILE_BEGIN.as_bytes()] {
            let sealed = s.seal(Some(Domain::Gateway), "odd", odd);
            assert!(is_sealed_file(&sealed));
            assert_eq!(s.unseal("odd", &sealed).unwrap().as_ref(), odd);
        }
    }

    #[test]
    fn a_file_without_secrets_is_stored_as_it_is() {
        let s = sealer();
        let plain = b"table inet filter {}\n";
        assert!(matches!(
            s.seal(Some(Domain::Gateway), "g.nft", plain),
            Cow::Borrowed(_)
        ));
        assert!(matches!(s.unseal("g.nft", plain).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn a_missing_key_or_an_altered_value_is_a_loud_error() {
        let s = sealer();
        let sealed = s.seal(Some(Domain::Radius), "p", CLIENTS.as_bytes()).to_vec();
        let e = sealer().unseal("p", &sealed).unwrap_err();
        assert!(matches!(e, SealError::UnknownKey { .. }), "{e}");
        assert!(e.to_string().contains("restore the key file"));
        // Moved to another path: does not open.
        assert!(matches!(
            s.unseal("other", &sealed).unwrap_err(),
            SealError::Forged { .. }
        ));
        let mut bad = sealed.clone();
        let i = memmem::find(&bad, TOKEN_PREFIX).unwrap() + 30;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert!(s.unseal("p", &bad).is_err());
    }

    #[test]
    fn redacted_patches_say_whether_a_secret_changed() {
        let s = sealer();
        let old_text = "client a {\n\tsecret = one\n\tshortname = a\n}\nclient b {\n\tsecret = two\n}\n";
        let new_text = "client a {\n\tsecret = uno\n\tshortname = A\n}\nclient b {\n\tsecret = two\n}\n";
        let old = s.seal(Some(Domain::Radius), "p", old_text.as_bytes()).to_vec();
        let new = s.seal(Some(Domain::Radius), "p", new_text.as_bytes()).to_vec();
        let patch = git2::Patch::from_buffers(&old, None, &new, None, None)
            .unwrap()
            .to_buf()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let shown = s.redact_patch("p", &old, &new, &patch);
        assert!(shown.contains("-\tsecret = «secret changed»"), "{shown}");
        assert!(shown.contains("+\tsecret = «secret changed»"), "{shown}");
        assert!(!shown.contains("ENC[v1,"));
        for secret in ["one", "uno", "two"] {
            assert!(!shown.contains(&format!("= {secret}")), "{shown}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Text that looks like the four services' files, with secret-bearing lines among
    /// arbitrary ones (and arbitrary bytes).
    fn config_text() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            "[ -~]{0,40}".prop_map(|s| s.into_bytes()),
            "[a-z]{1,8}".prop_map(|n| format!("client {n} {{\n").into_bytes()),
            Just(b"}\n".to_vec()),
            "[!-~]{1,24}".prop_map(|v| format!("\tsecret = {v}\n").into_bytes()),
            "[ -~]{0,24}".prop_map(|v| format!("  \"password\": \"{}\",\n", v.replace(['"', '\\'], "")).into_bytes()),
            "[ -~]{0,24}".prop_map(|v| format!("    cookie-secret: \"{}\"\n", v.replace('"', "")).into_bytes()),
            "[ -~]{0,16}".prop_map(|v| format!("u Cleartext-Password := \"{v}\"\n").into_bytes()),
            Just(b"-----BEGIN EC PRIVATE KEY-----\n".to_vec()),
            Just(b"x = ENC[v1,00000000,a,AAAA]\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..16),
            Just(b"{ [ \"a\": { \"b\": [".to_vec()),
        ];
        proptest::collection::vec(line, 0..24).prop_map(|l| l.concat())
    }

    fn sealer() -> Sealer {
        Sealer::new(Keyring::parse(&Keyring::new_key_line()).unwrap(), BTreeMap::new())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever a file holds, unsealing its sealed form gives its bytes back, and
        /// sealing is deterministic.
        #[test]
        fn unseal_of_seal_is_the_original(content in config_text(), domain in 0usize..5, path in "[a-z]{1,8}(/[a-z.]{1,8}){0,2}") {
            let s = sealer();
            let d = Domain::ALL[domain];
            let sealed = s.seal(Some(d), &path, &content).into_owned();
            let back = s.unseal(&path, &sealed).unwrap().into_owned();
            prop_assert_eq!(back, content.clone());
            let again = s.seal(Some(d), &path, &content).into_owned();
            prop_assert_eq!(again, sealed);
        }

        /// Arbitrary bytes never panic a detector, and a malformed sealed value is an error,
        /// never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(content in proptest::collection::vec(any::<u8>(), 0..512)) {
            let s = sealer();
            for d in Domain::ALL {
                let _ = s.seal(Some(d), "p", &content);
            }
            let _ = s.unseal("p", &content);
            let mut prefixed = TOKEN_PREFIX.to_vec();
            prefixed.extend_from_slice(&content);
            let _ = s.unseal("p", &prefixed);
        }
    }
}
