//! Strict host-key checking against an OpenSSH `known_hosts` file: plain and hashed
//! (`|1|salt|hash`) host patterns, `[host]:port` for ports other than 22, wildcards and
//! negations, and `@revoked`. There is no accept-all mode.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Pattern {
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    Plain { glob: String, negated: bool },
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    patterns: Vec<Pattern>,
    key: Vec<u8>,
}

/// The parsed file.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// What the file says of a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A non-revoked entry for the host has exactly this key.
    Trusted,
    /// The host has entries, none with this key.
    Mismatch,
    /// The host has no entry.
    Unknown,
    /// The key is marked `@revoked`.
    Revoked,
}

/// The SSH fingerprint of a key blob: `SHA256:<base64 without padding>`.
pub fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(key)))
}

/// The name a host is known by: `host`, or `[host]:port` when the port is not 22.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

impl KnownHosts {
    /// Reads and parses a file; unreadable lines are skipped.
    pub fn load(path: &Path) -> std::io::Result<KnownHosts> {
        Ok(KnownHosts::parse(&std::fs::read_to_string(path)?))
    }

    /// Parses known_hosts text.
    pub fn parse(text: &str) -> KnownHosts {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let marker = match first {
                "@revoked" => Marker::Revoked,
                "@cert-authority" => Marker::CertAuthority,
                _ => Marker::None,
            };
            if marker != Marker::None {
                first = fields.next().unwrap_or_default();
            }
            let (Some(_key_type), Some(key_b64)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(key) = STANDARD.decode(key_b64) else { continue };
            let patterns = first.split(',').filter_map(parse_pattern).collect();
            entries.push(Entry { marker, patterns, key });
        }
        KnownHosts { entries }
    }

    /// Checks `key` for `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        let name = host_name(host, port);
        let matching: Vec<&Entry> = self.entries.iter().filter(|e| entry_matches(e, &name)).collect();
        if matching.iter().any(|e| e.marker == Marker::Revoked && e.key == key) {
            return Verdict::Revoked;
        }
        let plain: Vec<&&Entry> = matching.iter().filter(|e| e.marker == Marker::None).collect();
        if plain.iter().any(|e| e.key == key) {
            Verdict::Trusted
        } else if plain.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Mismatch
        }
    }
}

fn parse_pattern(p: &str) -> Option<Pattern> {
    if let Some(rest) = p.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        return Some(Pattern::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        });
    }
    let (negated, glob) = match p.strip_prefix('!') {
        Some(g) => (true, g),
        None => (false, p),
    };
    Some(Pattern::Plain {
        glob: glob.to_ascii_lowercase(),
        negated,
    })
}

fn entry_matches(entry: &Entry, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let mut positive = false;
    for p in &entry.patterns {
        match p {
            Pattern::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    continue;
                };
                mac.update(name.as_bytes());
                if mac.verify_slice(hash).is_ok() {
                    positive = true;
                }
            }
            Pattern::Plain { glob, negated } => {
                if wildcard(glob.as_bytes(), name.as_bytes()) {
                    if *negated {
                        return false;
                    }
                    positive = true;
                }
            }
        }
    }
    positive
}

/// OpenSSH's `*` and `?` matching.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], s) || (!s.is_empty() && wildcard(p, &s[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBb0mRHf5p7KfZ2Yk6j2NnU0S8r9w3tq2y8Vd2Jx0Q4a";

    fn key(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn plain_entries_with_ports_match_exactly() {
        let kh = KnownHosts::parse(&format!(
            "git.rgz.local ssh-ed25519 {KEY_A}\n[127.0.0.1]:2222 ssh-ed25519 {KEY_B}\n"
        ));
        assert_eq!(kh.check("git.rgz.local", 22, &key(KEY_A)), Verdict::Trusted);
        assert_eq!(kh.check("git.rgz.local", 22, &key(KEY_B)), Verdict::Mismatch);
        assert_eq!(kh.check("git.rgz.local", 2200, &key(KEY_A)), Verdict::Unknown);
        assert_eq!(kh.check("127.0.0.1", 2222, &key(KEY_B)), Verdict::Trusted);
    }

    #[test]
    fn hashed_entries_match_their_host_only() {
        let kh = KnownHosts::parse(&format!(
            "{} ssh-ed25519 {KEY_A}\n",
            hashed("[127.0.0.1]:2222", b"0123456789abcdefghij")
        ));
        assert_eq!(kh.check("127.0.0.1", 2222, &key(KEY_A)), Verdict::Trusted);
        assert_eq!(kh.check("127.0.0.1", 22, &key(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn revoked_keys_are_refused_even_when_also_listed() {
        let kh = KnownHosts::parse(&format!(
            "@revoked * ssh-ed25519 {KEY_A}\ngit.rgz.local ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(kh.check("git.rgz.local", 22, &key(KEY_A)), Verdict::Revoked);
    }

    #[test]
    fn wildcards_and_negations() {
        let kh = KnownHosts::parse(&format!("*.rgz.local,!bad.rgz.local ssh-ed25519 {KEY_A}\n"));
        assert_eq!(kh.check("git.rgz.local", 22, &key(KEY_A)), Verdict::Trusted);
        assert_eq!(kh.check("bad.rgz.local", 22, &key(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn fingerprints_look_like_ssh_keygen() {
        let fp = fingerprint(&key(KEY_A));
        assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
        assert_eq!(fp.len(), 7 + 43);
    }
}
