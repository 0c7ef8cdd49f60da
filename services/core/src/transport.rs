//! Credentials and callbacks for talking to the backup remote.

use git2::{Cred, CredentialType, FetchOptions, RemoteCallbacks};

use crate::settings::GitSettings;

/// Callbacks for every connection to the remote: the SSH key from `GIT_SSH_KEY_PATH`,
/// read at each connection so a rotated key needs no restart.
pub fn callbacks(git: &GitSettings) -> RemoteCallbacks<'static> {
    let key = git.ssh_key_path.clone();
    let passphrase_file = git.ssh_key_passphrase_file.clone();
    let mut cb = RemoteCallbacks::new();
    let mut tried = false;
    cb.credentials(move |_url, username, allowed| {
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            if tried {
                return Err(git2::Error::from_str(
                    "the remote refused the SSH key from GIT_SSH_KEY_PATH",
                ));
            }
            tried = true;
            let Some(key) = key.as_deref() else {
                return Err(git2::Error::from_str(
                    "the remote wants an SSH key: set GIT_SSH_KEY_PATH",
                ));
            };
            let passphrase = match passphrase_file.as_deref() {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| {
                            git2::Error::from_str(&format!("GIT_SSH_KEY_PASSPHRASE_FILE: {e}"))
                        })?
                        .trim_end_matches(['\n', '\r'])
                        .to_owned(),
                ),
                None => None,
            };
            return Cred::ssh_key(username.unwrap_or("git"), None, key, passphrase.as_deref());
        }
        Err(git2::Error::from_str(
            "the remote asks for credentials this service does not have",
        ))
    });
    cb
}

/// Fetch options with [`callbacks`].
pub fn fetch_options(git: &GitSettings) -> FetchOptions<'static> {
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(git));
    opts
}
