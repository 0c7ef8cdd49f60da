//! Talking to the backup remote: URL forms, the SSH key (read at every connection so a
//! rotated key needs no restart, refused when group- or world-readable), strict host-key
//! checking against `GIT_SSH_KNOWN_HOSTS`, and the connect/transfer time bounds.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use git2::{CertificateCheckStatus, Cred, CredentialType, FetchOptions, RemoteCallbacks};

use crate::known_hosts::{self, KnownHosts, Verdict};
use crate::remote::RemoteUrl;
use crate::settings::GitSettings;

/// Bounds every network operation of libgit2 (process-wide): TCP connect, and any
/// read or write that makes no progress (including the SSH session).
pub fn set_timeouts(connect: Duration, transfer: Duration) {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: these only store an integer in libgit2's global options; libgit2 reads it
    // when it opens a connection.
    #[allow(unsafe_code)]
    let result = unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect))
            .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(ms(transfer)))
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not set git network timeouts");
    }
}

/// One conversation with the remote: callbacks, and the reason a connection was refused
/// on our side (host key, key file), which is clearer than what libgit2 reports.
#[derive(Debug, Clone)]
pub struct Session {
    git: GitSettings,
    remote: Result<RemoteUrl, String>,
    refusal: Rc<RefCell<Option<String>>>,
}

impl Session {
    /// A session for the configured remote.
    pub fn new(git: &GitSettings) -> Session {
        Session {
            git: git.clone(),
            remote: RemoteUrl::parse(&git.remote),
            refusal: Rc::default(),
        }
    }

    /// Why our side refused the connection, if it did.
    pub fn refusal(&self) -> Option<String> {
        self.refusal.borrow().clone()
    }

    /// Explains a failed network operation: our refusal if any, else git's message.
    pub fn explain(&self, e: &git2::Error) -> String {
        self.refusal().unwrap_or_else(|| e.message().to_owned())
    }

    /// Callbacks for a connection.
    pub fn callbacks(&self) -> RemoteCallbacks<'static> {
        let mut cb = RemoteCallbacks::new();
        let key = self.git.ssh_key_path.clone();
        let passphrase_file = self.git.ssh_key_passphrase_file.clone();
        let refusal = self.refusal.clone();
        let mut tried = false;
        cb.credentials(move |_url, username, allowed| {
            let user = username.unwrap_or("git");
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(user);
            }
            if !allowed.contains(CredentialType::SSH_KEY) && !allowed.contains(CredentialType::SSH_MEMORY) {
                return Err(refuse(
                    &refusal,
                    "the remote asks for credentials other than an SSH key".to_owned(),
                ));
            }
            if tried {
                return Err(refuse(
                    &refusal,
                    "the remote refused the SSH key from GIT_SSH_KEY_PATH".to_owned(),
                ));
            }
            tried = true;
            let (private, passphrase) =
                read_key(key.as_deref(), passphrase_file.as_deref()).map_err(|m| refuse(&refusal, m))?;
            Cred::ssh_key_from_memory(user, None, &private, passphrase.as_deref()).map_err(|e| {
                refuse(
                    &refusal,
                    format!(
                        "GIT_SSH_KEY_PATH: the key cannot be used ({}); wrong passphrase?",
                        e.message()
                    ),
                )
            })
        });
        let known = self.git.ssh_known_hosts.clone();
        let port = match &self.remote {
            Ok(RemoteUrl::Ssh { port, .. }) => *port,
            _ => 22,
        };
        let refusal = self.refusal.clone();
        cb.certificate_check(move |cert, host| {
            let Some(hk) = cert.as_hostkey() else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let Some(blob) = hk.hostkey() else {
                return Err(refuse(
                    &refusal,
                    format!("{host}: the SSH library did not expose the host key"),
                ));
            };
            let kind = hk.hostkey_type().map(|t| t.name()).unwrap_or("unknown");
            let name = known_hosts::host_name(host, port);
            let fp = known_hosts::fingerprint(blob);
            let Some(path) = known.as_deref() else {
                return Err(refuse(
                    &refusal,
                    format!("GIT_SSH_KNOWN_HOSTS is not set: the host key of {name} ({kind} {fp}) cannot be verified"),
                ));
            };
            let hosts = KnownHosts::load(path).map_err(|e| {
                refuse(
                    &refusal,
                    format!("GIT_SSH_KNOWN_HOSTS {}: cannot read: {e}", path.display()),
                )
            })?;
            match hosts.check(host, port, blob) {
                Verdict::Trusted => Ok(CertificateCheckStatus::CertificateOk),
                Verdict::Unknown => Err(refuse(
                    &refusal,
                    format!(
                        "host key of {name} is not in GIT_SSH_KNOWN_HOSTS ({}): the server offered {kind} {fp}",
                        path.display()
                    ),
                )),
                Verdict::Mismatch => Err(refuse(
                    &refusal,
                    format!(
                        "HOST KEY MISMATCH for {name}: the server offered {kind} {fp}, which is not the key in \
                         GIT_SSH_KNOWN_HOSTS ({}); refusing to connect",
                        path.display()
                    ),
                )),
                Verdict::Revoked => Err(refuse(
                    &refusal,
                    format!("host key of {name} ({kind} {fp}) is marked @revoked in GIT_SSH_KNOWN_HOSTS; refusing"),
                )),
            }
        });
        cb
    }

    /// Fetch options with these callbacks. `FETCH_HEAD` is not written: nothing reads it,
    /// and writing it (a lock file, renamed) cost two new inodes a run.
    pub fn fetch_options(&self) -> FetchOptions<'static> {
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(self.callbacks()).update_fetchhead(false);
        opts
    }
}

fn refuse(slot: &Rc<RefCell<Option<String>>>, message: String) -> git2::Error {
    let e = git2::Error::from_str(&message);
    *slot.borrow_mut() = Some(message);
    e
}

/// Reads the private key (refusing one readable by group or others, as ssh does) and
/// its passphrase.
fn read_key(key: Option<&Path>, passphrase_file: Option<&Path>) -> Result<(String, Option<String>), String> {
    let key = key.ok_or("the remote wants an SSH key: set GIT_SSH_KEY_PATH")?;
    let meta = std::fs::metadata(key).map_err(|e| format!("GIT_SSH_KEY_PATH {}: {e}", key.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "GIT_SSH_KEY_PATH {} is readable by group or others (mode {mode:04o}); refusing to use it: chmod 600 it",
            key.display()
        ));
    }
    let private = std::fs::read_to_string(key).map_err(|e| format!("GIT_SSH_KEY_PATH {}: {e}", key.display()))?;
    let passphrase = match passphrase_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("GIT_SSH_KEY_PASSPHRASE_FILE {}: {e}", p.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        None => None,
    };
    Ok((private, passphrase))
}
