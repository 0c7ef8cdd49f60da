//! Restore drills: proof, before the day it is needed, that the backup remote can restore
//! every domain exactly as it was backed up.
//!
//! A drill clones the remote afresh (over the same transport as pushes) into a private
//! temporary directory and checks, per domain:
//! - every commit's signature since the trust start (`CONFIG_BACKUP_SIGNING_TRUST_START`),
//!   when commits are signed;
//! - the audit hash chain against the trail, and against the commits and trailers the
//!   clone holds;
//! - that the domain's files at the remote's head are, byte for byte (SHA-256), with their
//!   owners and modes, the versions the audit trail recorded last;
//! - that every sealed file unseals with the site's key file as it is on disk now;
//! - that the domain's validate command passes on the restored files (at the service's
//!   own paths when configured).
//!
//! A domain is PROVEN when every check held, else FAILED with causes, each naming the
//! commit, the file and what did not hold.
//!
//! Invariant: a drill writes nothing but its own temporary directory and its record:
//! not the working copy, not the remote, not a live file. It holds the engine lock only
//! while it clones and reads the trail, so the two are seen between runs.

mod checks;

use std::collections::BTreeMap;

use chrono::Utc;
use uuid::Uuid;

use crate::domain::{Actor, Domain};
use crate::engine::Engine;
use crate::error::{EngineError, blocking};
use crate::repo::WorkingCopy;
use crate::rollback::Validation;
use crate::store::{DomainDrill, DrillRecord, LiveFile, LockKind, Trigger};

/// At most this many causes are kept per domain (the rest are counted).
const MAX_CAUSES: usize = 50;

/// Now, to the microsecond both databases keep: the answer shows what is recorded.
fn now() -> chrono::DateTime<Utc> {
    let t = Utc::now();
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Who asked for a drill.
#[derive(Debug, Clone)]
pub struct DrillParams {
    /// The schedule or a person.
    pub trigger: Trigger,
    /// Who.
    pub actor: Actor,
    /// The call's request id.
    pub request_id: Option<String>,
}

/// What the trail says of one domain, read under the lock with the clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrailView {
    /// The domain's last recorded commit.
    pub last_commit: Option<String>,
    /// Its files as recorded now.
    pub files: Vec<LiveFile>,
}

/// The causes found so far, per domain; a cause for no domain goes to every domain.
#[derive(Debug, Default)]
pub(crate) struct Causes {
    by_domain: BTreeMap<Domain, Vec<String>>,
}

impl Causes {
    /// A cause for `domain`, or for every domain when `None`.
    pub fn add(&mut self, domains: &[Domain], domain: Option<Domain>, cause: String) {
        match domain.filter(|d| domains.contains(d)) {
            Some(d) => self.by_domain.entry(d).or_default().push(cause),
            None => {
                for d in domains {
                    self.by_domain.entry(*d).or_default().push(cause.clone());
                }
            }
        }
    }

    fn take(&mut self, domain: Domain) -> Vec<String> {
        let mut causes = self.by_domain.remove(&domain).unwrap_or_default();
        if causes.len() > MAX_CAUSES {
            let more = causes.len() - MAX_CAUSES + 1;
            causes.truncate(MAX_CAUSES - 1);
            causes.push(format!("... and {more} more"));
        }
        causes
    }
}

impl Engine {
    /// Runs a restore drill now and records it. Fails with [`EngineError::Busy`] while a
    /// backup or rollback holds the lock (the drill waits for no one).
    pub async fn drill(&self, params: DrillParams) -> Result<DrillRecord, EngineError> {
        let this = self.clone();
        self.run_detached(async move {
            let id = Uuid::new_v4();
            let record = tracing::Instrument::instrument(
                this.drill_inner(id, params),
                tracing::info_span!("drill", drill = %id),
            )
            .await?;
            this.store().record_drill(&record).await?;
            if record.proven() {
                tracing::info!(drill = %record.id, "restore drill: every domain proven restorable");
            } else {
                for d in record.domains.iter().filter(|d| !d.proven()) {
                    tracing::warn!(drill = %record.id, domain = %d.domain, causes = ?d.causes, "restore drill failed");
                }
            }
            this.notify_drill(&record);
            Ok(record)
        })
        .await
    }

    async fn drill_inner(&self, id: Uuid, params: DrillParams) -> Result<DrillRecord, EngineError> {
        let started_at = now();
        let settings = self.settings().clone();
        let domains: Vec<Domain> = settings.domains.iter().map(|d| d.domain).collect();
        let drills = settings.data_dir.join("drills");
        std::fs::create_dir_all(&drills)
            .map_err(|e| EngineError::Internal(format!("cannot create {}: {e}", drills.display())))?;
        // Restored files hold secrets in clear: only the service's user may enter.
        let tmp = tempfile::Builder::new()
            .prefix("drill-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&drills)
            .map_err(|e| EngineError::Internal(format!("cannot create a drill directory: {e}")))?;
        let mut record = DrillRecord {
            id,
            started_at,
            finished_at: started_at,
            trigger: params.trigger,
            requested_by: params.actor.as_audit().to_owned(),
            request_id: params.request_id,
            remote_head: None,
            error: None,
            domains: Vec::new(),
            notes: Vec::new(),
        };

        // The clone and the trail, between runs.
        let lock = self.lock(LockKind::Drill, id).await?;
        let read = async {
            let (git, dir) = (settings.git.clone(), tmp.path().join("remote.git"));
            let head = blocking(move || WorkingCopy::fresh_clone(&git, &dir).map(|c| c.map(|(_, head)| head))).await?;
            let chain = self.store().verify_audit_chain(self.signer()).await?;
            let mut trail = BTreeMap::new();
            for d in &domains {
                trail.insert(
                    *d,
                    TrailView {
                        last_commit: self.store().domain_summary(*d).await?.map(|s| s.last_commit),
                        files: self.store().live_files(*d).await?,
                    },
                );
            }
            Ok::<_, EngineError>((head, chain, trail))
        }
        .await;
        lock.release().await;

        let mut causes = Causes::default();
        let (head, chain, trail) = match read {
            Ok((Ok(Some(head)), chain, trail)) => (head, chain, trail),
            Ok((Ok(None), ..)) => {
                record.error = Some(format!(
                    "the remote has no branch {}: nothing to restore",
                    settings.git.branch
                ));
                return Ok(self.conclude(record, &domains, causes));
            }
            Ok((Err(e), ..)) => {
                record.error = Some(format!("cannot clone the remote: {e}"));
                return Ok(self.conclude(record, &domains, causes));
            }
            Err(e) => return Err(e),
        };
        record.remote_head = Some(head.to_string());

        let dir = tmp.path().join("remote.git");
        let key = crate::secrets::Keyring::load(&settings.secrets.key_file)
            .map(|keys| crate::secrets::Sealer::new(keys, settings.secrets.rules.clone()))
            .map_err(|e| format!("the key file {}: {e}", settings.secrets.key_file.display()));
        let (s, d) = (settings.clone(), dir.clone());
        let history = blocking(move || checks::history(&s, &d, head, &chain).map_err(EngineError::from)).await??;
        record.notes = history.notes;
        for (domain, cause) in history.causes {
            causes.add(&domains, domain, cause);
        }

        let key = std::sync::Arc::new(key);
        let mut checked = BTreeMap::new();
        for d in &domains {
            let (s, dir, view, k, domain) = (
                settings.clone(),
                dir.clone(),
                trail.get(d).cloned().unwrap_or_default(),
                key.clone(),
                *d,
            );
            let found = blocking(move || checks::domain(&s, &dir, head, domain, &view, &k).map_err(EngineError::from))
                .await??;
            for c in found.causes {
                causes.add(&domains, Some(*d), c);
            }
            if settings.rollback.commands(*d).validate.is_none() {
                record.notes.push(format!("{d}: no validate command configured"));
            }
            if let Some(files) = found.restored {
                match self.validate_domain(*d, &files).await {
                    Validation::NotConfigured => {}
                    Validation::Ran { ok: true, .. } => {}
                    Validation::Ran { ok: false, message, .. } => {
                        // The checker's words, secrets of the restored files scrubbed.
                        let key = key.as_ref().as_ref().ok();
                        let secrets: Vec<String> = key
                            .map(|k| {
                                files
                                    .iter()
                                    .flat_map(|f| k.secret_values(*d, f.path.as_str(), &f.content))
                                    .collect()
                            })
                            .unwrap_or_default();
                        causes.add(
                            &domains,
                            Some(*d),
                            format!(
                                "commit {}: the validate command refused the restored files: {}",
                                found.commit.as_deref().unwrap_or("?"),
                                crate::secrets::scrub(&message, &secrets)
                            ),
                        );
                    }
                    Validation::CannotRun(e) => causes.add(
                        &domains,
                        Some(*d),
                        format!("the validate command could not run on the restored files: {e}"),
                    ),
                }
            }
            checked.insert(*d, (found.commit, found.files));
        }
        let mut record = self.conclude(record, &domains, causes);
        for x in &mut record.domains {
            if let Some((commit, files)) = checked.remove(&x.domain) {
                x.commit = commit;
                x.files = files;
            }
        }
        Ok(record)
    }

    /// The record with a row per domain (a drill-wide error is every domain's cause).
    fn conclude(&self, mut record: DrillRecord, domains: &[Domain], mut causes: Causes) -> DrillRecord {
        if let Some(e) = record.error.clone() {
            causes.add(domains, None, e);
        }
        record.domains = domains
            .iter()
            .map(|d| DomainDrill {
                domain: *d,
                commit: None,
                files: 0,
                causes: causes.take(*d),
            })
            .collect();
        record.finished_at = now();
        record
    }

    /// The latest drills, newest first.
    pub async fn drills(&self, limit: i64) -> Result<Vec<DrillRecord>, EngineError> {
        Ok(self.store().drills(limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_for_no_domain_goes_to_every_domain_and_many_are_counted() {
        let all = [Domain::Dns, Domain::Kea];
        let mut c = Causes::default();
        c.add(&all, None, "chain broken".to_owned());
        c.add(&all, Some(Domain::Dns), "commit a: x".to_owned());
        for i in 0..60 {
            c.add(&all, Some(Domain::Kea), format!("file {i}"));
        }
        assert_eq!(c.take(Domain::Dns), vec!["chain broken", "commit a: x"]);
        let kea = c.take(Domain::Kea);
        assert_eq!(kea.len(), MAX_CAUSES);
        assert_eq!(kea[0], "chain broken");
        assert_eq!(kea.last().map(String::as_str), Some("... and 12 more"));
        assert!(c.take(Domain::Gateway).is_empty());
    }
}
