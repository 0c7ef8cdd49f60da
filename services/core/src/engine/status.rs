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

    /// Another site's state, read from the shared database: what its server recorded and
    /// announced (its working copy is on its own host: unpushed commits are its last run's
    /// count, tracked files the trail's). NotFound for a site no server announced.
    pub async fn site_status(&self, site: &str) -> Result<EngineStatus, EngineError> {
        if site == self.site() {
            return self.status().await;
        }
        let store = self.inner.store.for_site(site);
        let announced = self.known_site(site).await?;
        let schedule = crate::settings::Schedule {
            enabled: announced.schedule_enabled,
            hour: announced.schedule_hour,
            minute: announced.schedule_minute,
        };
        let mut status = self.read_status_from(&*store, false).await?;
        status.schedule_enabled = schedule.enabled;
        status.next_scheduled_at = schedule.next_after(Utc::now());
        Ok(status)
    }

    /// What `site`'s server announced; NotFound when no server of it has.
    pub(super) async fn known_site(&self, site: &str) -> Result<crate::store::SiteAnnouncement, EngineError> {
        self.inner.store.announcement(site).await?.ok_or_else(|| {
            EngineError::NotFound(format!(
                "site {}: no server of that site has announced itself in this database",
                crate::domain::quote_input(site)
            ))
        })
    }

    /// The sites sharing this database, each with its last run, push state and next
    /// scheduled run.
    pub async fn list_sites(&self) -> Result<Vec<SiteStatus>, EngineError> {
        let now = Utc::now();
        let me = self.lock_observer();
        let mut proofs: BTreeMap<String, Vec<crate::store::DomainProof>> = BTreeMap::new();
        for p in self.inner.store.domain_proofs(true).await? {
            proofs.entry(p.site.clone()).or_default().push(p);
        }
        Ok(self
            .inner
            .store
            .list_sites()
            .await?
            .into_iter()
            .map(|s| {
                let schedule = crate::settings::Schedule {
                    enabled: s.announced.schedule_enabled,
                    hour: s.announced.schedule_hour,
                    minute: s.announced.schedule_minute,
                };
                let running = s
                    .lock
                    .as_ref()
                    .filter(|(h, beat)| crate::store::holder_alive(h, *beat, self.inner.settings.lock_ttl, now, &me))
                    .map(|(h, _)| h.clone());
                SiteStatus {
                    next_scheduled_at: schedule.enabled.then(|| schedule.next_after(now)),
                    running,
                    proofs: proofs.remove(&s.site).unwrap_or_default(),
                    site: s.site,
                    host: s.announced.host,
                    seen_at: s.announced.seen_at,
                    last_run: s.last_run,
                }
            })
            .collect())
    }

    /// Tells the shared database this server backs up its site, with its schedule.
    pub(super) async fn announce(&self) -> Result<(), EngineError> {
        let schedule = &self.inner.settings.schedule;
        self.inner
            .store
            .announce_site(&crate::store::SiteAnnouncement {
                host: self.inner.host.clone(),
                schedule_enabled: schedule.enabled,
                schedule_hour: schedule.hour,
                schedule_minute: schedule.minute,
                seen_at: Utc::now(),
            })
            .await?;
        Ok(())
    }

    /// This process as a lock holder would be, for telling live holders from dead ones.
    fn lock_observer(&self) -> LockHolder {
        LockHolder {
            kind: LockKind::Backup,
            id: Uuid::nil(),
            host: self.inner.host.clone(),
            pid: std::process::id(),
            instance: crate::store::instance().to_owned(),
            acquired_at: Utc::now(),
        }
    }

    async fn read_status(&self) -> Result<EngineStatus, EngineError> {
        let store = self.inner.store.clone();
        self.read_status_from(&*store, true).await
    }

    /// The status as `store` records it; with `local`, the working copy (this server's
    /// site) adds unpushed commits, tracked files, the remote and the schedule.
    async fn read_status_from(&self, store: &dyn Store, local: bool) -> Result<EngineStatus, EngineError> {
        let settings = &self.inner.settings;
        // A run is running only while its holder is alive: it renews its heartbeat within
        // the TTL and, on this host, its process exists.
        let me = self.lock_observer();
        let alive = |holder: &Option<(LockHolder, DateTime<Utc>)>| matches!(holder, Some((h, beat)) if crate::store::holder_alive(h, *beat, settings.lock_ttl, Utc::now(), &me));
        // The lock, then the last run: a run that ends in between (its outcome and the
        // lock's release are one transaction) is told ended. A run that starts in between
        // reads as running without a live holder, as an interrupted run does: the pair is
        // read again, and only a run still so on the third reading is told interrupted.
        let (mut holder, mut last_run) = (store.lock_holder().await?, store.last_run().await?);
        for _ in 0..2 {
            if alive(&holder) || last_run.as_ref().is_none_or(|r| r.outcome != RunOutcome::Running) {
                break;
            }
            (holder, last_run) = (store.lock_holder().await?, store.last_run().await?);
        }
        let last_successful_run = store.last_successful_run().await?;
        let last_push_at = store.last_push_success().await?;
        let (running, interrupted) = match holder {
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
        let proofs = store
            .domain_proofs(false)
            .await?
            .into_iter()
            .map(|p| (p.domain, p))
            .collect();
        let mut domains = Vec::new();
        let unpushed;
        if local {
            let git = settings.git.clone();
            let domains_cfg: Vec<Domain> = settings.domains.iter().map(|d| d.domain).collect();
            let (count, tracked) = blocking(move || -> Result<(usize, Vec<usize>), EngineError> {
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
            unpushed = count;
            for (spec, count) in settings.domains.iter().zip(tracked) {
                domains.push((spec.domain, store.domain_summary(spec.domain).await?, count));
            }
        } else {
            unpushed = last_run
                .as_ref()
                .map(|r| usize::try_from(r.unpushed_commits).unwrap_or(0))
                .unwrap_or(0);
            for d in Domain::ALL {
                if let Some(summary) = store.domain_summary(d).await? {
                    let tracked = usize::try_from(store.tracked_files(d).await?).unwrap_or(0);
                    domains.push((d, Some(summary), tracked));
                }
            }
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
            remote: if local {
                crate::remote::redact_url(&settings.git.remote)
            } else {
                String::new()
            },
            branch: if local {
                settings.git.branch.clone()
            } else {
                String::new()
            },
            site: store.site().to_owned(),
            running,
            interrupted,
            domain_errors,
            last_mail,
            signing_key: if local { self.inner.signing_key.clone() } else { None },
            proofs,
            clear_history: if local { self.clear_history() } else { None },
        })
    }
}
