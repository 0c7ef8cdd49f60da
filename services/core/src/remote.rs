//! The backup remote's URL, parsed once (`RemoteUrl`): a local path, `file://`, `ssh://`
//! or scp-like `user@host:path`; and any URL with its password hidden for logs and the
//! status (`redact_url`).

use std::path::{Path, PathBuf};

use crate::domain::quote_input;

/// A parsed `GIT_BACKUP_REPO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteUrl {
    /// A local path or `file://` URL.
    Local(PathBuf),
    /// `ssh://[user@]host[:port]/path` or scp-like `[user@]host:path`.
    Ssh {
        /// The login, if given.
        user: Option<String>,
        /// The host.
        host: String,
        /// The port (22 by default).
        port: u16,
        /// The repository path on the host.
        path: String,
    },
}

impl RemoteUrl {
    /// Parses a remote URL; the error says what forms are allowed.
    pub fn parse(url: &str) -> Result<RemoteUrl, String> {
        const FORMS: &str = "use a local path, file:///path, ssh://user@host[:port]/path or user@host:path";
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(RemoteUrl::Local(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("ssh://") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or_else(|| format!("{} has no path: {FORMS}", quote_input(url)))?;
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_owned()), h),
                None => (None, authority),
            };
            let (host, port) = split_host_port(hostport)
                .map_err(|p| format!("{}: bad port {}; {FORMS}", quote_input(url), quote_input(&p)))?;
            if host.is_empty() {
                return Err(format!("{} has no host: {FORMS}", quote_input(url)));
            }
            return Ok(RemoteUrl::Ssh {
                user,
                host: host.to_owned(),
                port,
                path: format!("/{path}"),
            });
        }
        if url.contains("://") {
            return Err(format!("{}: unsupported scheme: {FORMS}", quote_input(url)));
        }
        if url.starts_with('/') || url.starts_with('.') {
            return Ok(RemoteUrl::Local(PathBuf::from(url)));
        }
        // scp-like: [user@]host:path (a ':' before any '/').
        match url.split_once(':') {
            Some((authority, path)) if !authority.contains('/') && !authority.is_empty() && !path.is_empty() => {
                let (user, host) = match authority.rsplit_once('@') {
                    Some((u, h)) => (Some(u.to_owned()), h.to_owned()),
                    None => (None, authority.to_owned()),
                };
                Ok(RemoteUrl::Ssh {
                    user,
                    host,
                    port: 22,
                    path: path.to_owned(),
                })
            }
            _ => Ok(RemoteUrl::Local(PathBuf::from(url))),
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the error is the bad port text.
fn split_host_port(s: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| s.to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| p.to_owned())?,
        None => 22,
    };
    Ok((host, port))
}

impl RemoteUrl {
    /// The directory of a remote given as an absolute local path or a `file://` URL,
    /// when it exists.
    pub fn local_dir(url: &str) -> Option<PathBuf> {
        local_path(url)
            .map(Path::new)
            .filter(|p| p.is_dir())
            .map(Path::to_path_buf)
    }

    /// Whether two remote URLs name the same remote (a local path and its `file://`
    /// URL do, as do two paths to the same directory).
    pub fn same(a: &str, b: &str) -> bool {
        normalize(a) == normalize(b)
    }
}

/// The path of a remote given as an absolute local path or a `file://` URL.
fn local_path(url: &str) -> Option<&str> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    path.starts_with('/').then_some(path)
}

fn normalize(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match local_path(url) {
        Some(path) => std::fs::canonicalize(path)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.to_owned()),
        None => url.to_owned(),
    }
}

/// A URL with any password replaced by `***`, for logs and the status.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let auth_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!("{}://{}:***{}", &url[..scheme_end], &userinfo[..colon], &rest[at..]);
            }
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_forms_parse() {
        assert_eq!(
            RemoteUrl::parse("git@git.rgz.local:configs.git").unwrap(),
            RemoteUrl::Ssh {
                user: Some("git".into()),
                host: "git.rgz.local".into(),
                port: 22,
                path: "configs.git".into()
            }
        );
        assert_eq!(
            RemoteUrl::parse("ssh://git@127.0.0.1:2222/srv/configs.git").unwrap(),
            RemoteUrl::Ssh {
                user: Some("git".into()),
                host: "127.0.0.1".into(),
                port: 2222,
                path: "/srv/configs.git".into()
            }
        );
        assert_eq!(
            RemoteUrl::parse("ssh://host/x.git").unwrap(),
            RemoteUrl::Ssh {
                user: None,
                host: "host".into(),
                port: 22,
                path: "/x.git".into()
            }
        );
        assert_eq!(
            RemoteUrl::parse("/srv/remote.git").unwrap(),
            RemoteUrl::Local("/srv/remote.git".into())
        );
        assert_eq!(
            RemoteUrl::parse("file:///srv/remote.git").unwrap(),
            RemoteUrl::Local("/srv/remote.git".into())
        );
        assert!(RemoteUrl::parse("https://example.com/x.git").is_err());
        assert!(RemoteUrl::parse("ssh://host:notaport/x").is_err());
    }

    #[test]
    fn passwords_are_hidden_and_other_urls_kept() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("git@host:configs.git"), "git@host:configs.git");
    }

    #[test]
    fn a_path_and_its_file_url_are_the_same_remote() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().display().to_string();
        assert!(RemoteUrl::same(&p, &format!("file://{p}/")));
        assert!(!RemoteUrl::same(&p, "git@host:configs.git"));
    }
}
