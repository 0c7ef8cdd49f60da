//! Status: one read of the store and the working copy shared by concurrent callers,
//! reused until this process writes or [`STATUS_MAX_AGE`] passes.

use super::*;

/// How long a status read by this process may be reused when nothing it wrote changed.
pub const STATUS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct CachedStatus {
    at: Instant,
    generation: u64,
    status: EngineStatus,
}

impl Engine {
    /// The service's state. Every change this process makes shows at once; one made by a
    /// replica sharing the database shows within [`STATUS_MAX_AGE`]. Concurrent callers
    /// share one read.
    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        let mut cache = self.inner.status_cache.lock().await;
        let generation = self.inner.store.write_generation();
        let mut status = match cache.as_ref() {
            Some(c) if c.generation == generation && c.at.elapsed() < STATUS_MAX_AGE => c.status.clone(),
            _ => {
                let at = Instant::now();
                let status = self.read_status().await?;
                *cache = Some(CachedStatus {
                    at,
                    generation,
                    status: status.clone(),
                });
                status
            }
        };
        drop(cache);
        status.next_scheduled_at = self.inner.settings.schedule.next_after(Utc::now());
        Ok(status)
    }

    async fn read_status(&self) -> Result<EngineStatus, EngineError> {
        let store = &self.inner.store;
        let settings = &self.inner.settings;
        let mut last_run = store.last_run().await?;
        let last_successful_run = store.last_successful_run().await?;
        let last_push_at = store.last_push_success().await?;
        // A run is running only while its holder is alive: it renews its heartbeat within
        // the TTL and, on this host, its process exists.
        let me = LockHolder {
            kind: LockKind::Backup,
            id: Uuid::nil(),
            host: self.inner.host.clone(),
            pid: std::process::id(),
            instance: crate::store::instance().to_owned(),
            acquired_at: Utc::now(),
        };
        let (running, interrupted) = match store.lock_holder().await? {
            Some((h, beat)) if crate::store::holder_alive(&h, beat, settings.lock_ttl, Utc::now(), &me) => {
                (Some(h), None)
            }
            Some((holder, last_heartbeat)) => (None, Some(Interrupted { holder, last_heartbeat })),
            None => (None, None),
        };
        if running.is_none()
            && let Some(r) = last_run.as_mut()
            && r.outcome == RunOutcome::Running
        {
            // Recorded as running, but nothing holds the lock: it was interrupted (the next
            // run records it so).
            r.outcome = RunOutcome::Interrupted;
            if r.error.is_none() {
                r.error = Some(match &interrupted {
                    Some(i) => i.to_string(),
                    None => "the run stopped without ending".to_owned(),
                });
            }
        }
        let last_mail = store.last_mail().await?;
        let domain_errors: BTreeMap<Domain, String> = match &last_run {
            Some(r) => store.domain_errors(r.id).await?.into_iter().collect(),
            None => BTreeMap::new(),
        };
        let git = settings.git.clone();
        let domains_cfg: Vec<Domain> = settings.domains.iter().map(|d| d.domain).collect();
        let (unpushed, tracked) = blocking(move || -> Result<(usize, Vec<usize>), EngineError> {
            if !git.working_dir.join(".git").exists() {
                return Ok((0, vec![0; domains_cfg.len()]));
            }
            let wc = WorkingCopy::open(&git)?;
            let head = wc.head()?;
            let mut tracked = Vec::new();
            for d in &domains_cfg {
                tracked.push(wc.manifest_len(head, *d)?);
            }
            Ok((wc.unpushed()?, tracked))
        })
        .await??;
        let mut domains = Vec::new();
        for (spec, count) in settings.domains.iter().zip(tracked) {
            domains.push((spec.domain, store.domain_summary(spec.domain).await?, count));
        }
        let last_push_error = last_run
            .as_ref()
            .filter(|r| matches!(r.push_outcome, Some(PushOutcome::Failed | PushOutcome::Diverged)))
            .and_then(|r| r.push_error.clone());
        Ok(EngineStatus {
            last_run,
            last_successful_run,
            domains,
            unpushed,
            last_push_at,
            last_push_error,
            next_scheduled_at: settings.schedule.next_after(Utc::now()),
            schedule_enabled: settings.schedule.enabled,
            remote: crate::settings::redact_url(&settings.git.remote),
            branch: settings.git.branch.clone(),
            running,
            interrupted,
            domain_errors,
            last_mail,
            clear_history: self.clear_history(),
        })
    }
}
