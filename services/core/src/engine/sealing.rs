//! The repository's sealing state: the key that sealed the newest backup commit must be
//! in the key file (checked at start: a lost key stops the service, loudly), and where
//! the history made before sealing ends (those commits may hold secrets in clear, and
//! git history is never rewritten: Status and History say so).

use chrono::{DateTime, TimeZone, Utc};

use crate::error::EngineError;
use crate::repo::{self, WorkingCopy};
use crate::secrets::{SealError, Sealer, TRAILER_SEALED};

/// The newest backup commit made before sealing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearHistory {
    /// Its hash.
    pub commit: String,
    /// Its time.
    pub at: DateTime<Utc>,
}

impl ClearHistory {
    /// What Status and History say.
    pub fn notice(&self) -> String {
        format!(
            "backup commits up to {} ({}) were made before secrets were sealed and may hold secrets in clear; \
             git history is never rewritten (docs/operations.md, \"Secrets in older history\")",
            &self.commit[..7.min(self.commit.len())],
            self.at.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

fn git(e: git2::Error) -> EngineError {
    EngineError::Internal(format!("reading the backup history: {e}"))
}

/// Checks that the key file holds the key of the newest sealed backup commit, and finds
/// the newest backup commit made before sealing (if any), walking first parents.
pub(super) fn inspect(wc: &WorkingCopy, sealer: &Sealer) -> Result<Option<ClearHistory>, EngineError> {
    let Some(head) = wc.head()? else {
        return Ok(None);
    };
    let r = wc.repository();
    let mut walk = r.revwalk().map_err(git)?;
    walk.push(head).map_err(git)?;
    walk.simplify_first_parent().map_err(git)?;
    let mut key_checked = false;
    for id in walk {
        let commit = r.find_commit(id.map_err(git)?).map_err(git)?;
        let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
        if repo::trailer(&message, repo::TRAILER_DOMAIN).is_none() {
            continue; // not a backup commit (made by hand on the remote)
        }
        match repo::trailer(&message, TRAILER_SEALED) {
            Some(v) => {
                if !key_checked {
                    let key_id = v.strip_prefix("v1 ").unwrap_or(v).trim();
                    if sealer.keys().get(key_id).is_none() {
                        return Err(EngineError::Internal(
                            SealError::UnknownKey {
                                path: format!("the backup repository (commit {})", &commit.id().to_string()[..7]),
                                key_id: key_id.to_owned(),
                                held: sealer.keys().ids().join(", "),
                            }
                            .to_string(),
                        ));
                    }
                    key_checked = true;
                }
            }
            None => {
                return Ok(Some(ClearHistory {
                    commit: commit.id().to_string(),
                    at: Utc
                        .timestamp_opt(commit.time().seconds(), 0)
                        .single()
                        .unwrap_or_else(Utc::now),
                }));
            }
        }
    }
    Ok(None)
}
