//! Types that parse and refuse bad input at the edge: past them, a domain, a commit
//! hash or a repository path is known to be valid.

use std::fmt;
use std::str::FromStr;

/// How many characters of a caller's value an error message quotes.
pub const ECHO_LIMIT: usize = 64;

/// A caller's value as an error message quotes it: Debug-quoted (control characters and
/// NULs escaped), at most [`ECHO_LIMIT`] characters, then an ellipsis and the full
/// length. Every message that echoes input goes through this: a 5,000-character value
/// must not come back twice in a gRPC trailer.
pub fn quote_input(value: &str) -> String {
    let n = value.chars().count();
    if n <= ECHO_LIMIT {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(ECHO_LIMIT).collect();
        format!("{head:?}… ({n} characters)")
    }
}

/// The longest site name.
pub const MAX_SITE_LEN: usize = 63;

/// The site a store, a lock or a run belongs to when `CONFIG_BACKUP_SITE` is not set.
pub const DEFAULT_SITE: &str = "default";

/// A site's name (`CONFIG_BACKUP_SITE`, a `site` parameter): 1 to 63 characters of
/// lowercase letters, digits, `-`, `_` and `.`, starting with a letter or a digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Site(String);

impl Site {
    /// Parses a site name; the error says what is allowed, quoting the value.
    pub fn parse(value: &str) -> Result<Site, String> {
        let ok = !value.is_empty()
            && value.len() <= MAX_SITE_LEN
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Site(value.to_owned()))
        } else {
            Err(format!(
                "{} is not a site name: allowed 1 to {MAX_SITE_LEN} lowercase letters, digits, '-', '_' and '.', \
                 starting with a letter or a digit",
                quote_input(value)
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Site {
    fn default() -> Site {
        Site(DEFAULT_SITE.to_owned())
    }
}

impl std::ops::Deref for Site {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Site> for String {
    fn from(s: Site) -> String {
        s.0
    }
}

/// `text` cut to at most `max` bytes, on a character boundary, with an ellipsis: the
/// last bound on an error message, whatever it quotes.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The largest `authorization` value accepted, in bytes (a JWT of this service is about
/// 250): larger ones are refused before any parsing (REST: 431; gRPC: UNAUTHENTICATED).
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// The largest request header section accepted, in bytes (names, values and 32 bytes per
/// field, as HTTP/2 counts them): the REST shim answers 431 above it, the gRPC server
/// refuses the stream.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The longest error message the API sends, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// A configuration domain: the network service whose files are backed up together
/// and committed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// nftables rules and scripts on the gateway.
    Gateway,
    /// Unbound DNS and its sinkhole lists.
    Dns,
    /// FreeRADIUS.
    Radius,
    /// Kea DHCP.
    Kea,
    /// OSPF routing.
    Ospf,
}

impl Domain {
    /// Every domain, in the audit trail's CHECK order.
    pub const ALL: [Domain; 5] = [Domain::Gateway, Domain::Dns, Domain::Radius, Domain::Kea, Domain::Ospf];

    /// The lower-case name used in configuration, the API and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Gateway => "gateway",
            Domain::Dns => "dns",
            Domain::Radius => "radius",
            Domain::Kea => "kea",
            Domain::Ospf => "ospf",
        }
    }

    /// The allowed names, for error messages: "gateway, dns, radius, kea, ospf".
    pub fn allowed() -> String {
        Domain::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the known domains.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown domain {}: allowed values are {allowed}", quote_input(given), allowed = Domain::allowed())]
pub struct UnknownDomain {
    /// What was given.
    pub given: String,
}

impl FromStr for Domain {
    type Err = UnknownDomain;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDomain { given: s.to_owned() })
    }
}

/// A full commit id (40 lower-case hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitHash(String);

impl CommitHash {
    /// The hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 7 hex digits.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl From<git2::Oid> for CommitHash {
    fn from(oid: git2::Oid) -> Self {
        CommitHash(oid.to_string())
    }
}

impl fmt::Display for CommitHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A commit given by a caller: full or abbreviated hex, at least 7 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPrefix(String);

/// Why a commit reference was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} is not a commit hash: expected 7 to 40 hexadecimal digits", quote_input(given))]
pub struct BadCommitPrefix {
    /// What was given.
    pub given: String,
}

impl CommitPrefix {
    /// The lower-case hex given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CommitPrefix {
    type Err = BadCommitPrefix;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(CommitPrefix(s.to_ascii_lowercase()))
        } else {
            Err(BadCommitPrefix { given: s.to_owned() })
        }
    }
}

/// How a file changed in a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New in this commit.
    Added,
    /// Content or mode changed.
    Modified,
    /// Removed.
    Deleted,
    /// Unchanged.
    Unchanged,
}

impl ChangeKind {
    /// Name in the API and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Unchanged => "unchanged",
        }
    }

    /// The letter of a commit-message body line.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'M',
            ChangeKind::Deleted => 'D',
            ChangeKind::Unchanged => ' ',
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Added,
            ChangeKind::Modified,
            ChangeKind::Deleted,
            ChangeKind::Unchanged,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Where the backup's own files (manifests, metadata) live in the repository.
pub const METADATA_DIR: &str = ".config-backup/";

/// A path relative to the source root and the repository root: UTF-8, `/`-separated,
/// no empty, `.` or `..` components, not absolute, no control characters or backslashes
/// (so it is the same path on disk, in git and in a `sha256sum` manifest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPath(String);

/// Why a path was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} is not a relative path inside the source root: {why}", quote_input(given))]
pub struct BadRepoPath {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl RepoPath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this path is the backup's own metadata (manifests), not a config file.
    pub fn is_metadata(&self) -> bool {
        self.0.starts_with(METADATA_DIR)
    }
}

impl FromStr for RepoPath {
    type Err = BadRepoPath;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadRepoPath {
            given: s.to_owned(),
            why,
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.starts_with('/') {
            return Err(bad("it is absolute"));
        }
        if s.chars().any(|c| c.is_control() || c == '\\') {
            return Err(bad("it contains a control character or a backslash"));
        }
        if s.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(bad("it has an empty, '.' or '..' component"));
        }
        Ok(RepoPath(s.to_owned()))
    }
}

impl std::borrow::Borrow<str> for RepoPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who asked for a backup or a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The daily schedule; recorded as "system".
    System,
    /// A caller, by the subject of their token.
    User(String),
}

impl Actor {
    /// The audit trail's `backed_up_by`.
    pub fn as_audit(&self) -> &str {
        match self {
            Actor::System => "system",
            Actor::User(sub) => sub,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_parse_from_their_names_only() {
        for d in Domain::ALL {
            assert_eq!(d.as_str().parse::<Domain>().unwrap(), d);
        }
        let err = "dhcp".parse::<Domain>().unwrap_err().to_string();
        assert!(err.contains("gateway, dns, radius, kea, ospf"), "{err}");
    }

    #[test]
    fn commit_prefixes_need_7_to_40_hex_digits() {
        assert!("abc123d".parse::<CommitPrefix>().is_ok());
        assert!("ABC123DEF".parse::<CommitPrefix>().is_ok());
        assert!("abc123".parse::<CommitPrefix>().is_err());
        assert!("xyz1234".parse::<CommitPrefix>().is_err());
        assert!("a".repeat(41).parse::<CommitPrefix>().is_err());
    }

    #[test]
    fn repo_paths_refuse_escapes() {
        assert!("config/kea/kea-dhcp4.conf".parse::<RepoPath>().is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b", "a\nb"] {
            assert!(bad.parse::<RepoPath>().is_err(), "{bad:?} accepted");
        }
    }
}
