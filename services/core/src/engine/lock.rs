//! The engine lock: one backup, rollback or drill at a time per site, across replicas
//! that share a database, renewed by a heartbeat while held.
//!
//! Invariant: a backup's run row is written only by the holder of the lock, and the
//! runs marked interrupted at its start are marked by it. A backup takes the free lock
//! and writes its row in one transaction ([`Engine::lock_starting`]); a held lock, or
//! one left by a holder that stopped, goes the long way ([`Engine::lock`], then the row).

use super::*;

/// Holds the engine lock and renews it until released.
#[derive(Debug)]
pub struct EngineLock {
    store: Arc<dyn Store>,
    id: Uuid,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Released already, in the transaction that recorded its holder's end.
    released: std::sync::atomic::AtomicBool,
}

impl EngineLock {
    /// The id the lock is held under.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Stops renewing the lock: the caller releases it in its own transaction (or it expires).
    pub fn stop_renewing(&self) {
        self.heartbeat.abort();
    }

    /// Notes that the lock was released in the transaction that recorded its holder's
    /// end ([`crate::store::Runs::finish_run`]): [`EngineLock::release`] has nothing
    /// left to write.
    pub(crate) fn released_with_record(&self) {
        self.heartbeat.abort();
        self.released.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Releases the lock.
    pub async fn release(self) {
        self.heartbeat.abort();
        if self.released.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.store.release_lock(self.id).await {
            tracing::error!(error = %e, id = %self.id, "could not release the engine lock; it expires by itself");
        }
    }
}

impl Drop for EngineLock {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Who holds the lock a run is made under.
pub(crate) enum Held<'a> {
    /// Its caller, past the run's end (a rollback's own runs): the run writes its row at
    /// its start and leaves the lock held at its end.
    ByCaller,
    /// The run itself: taken with its row by [`Engine::lock_starting`], released in the
    /// transaction that records its end.
    ByRun(Box<Started<'a>>),
}

/// A run whose row is written, under a lock taken for it.
pub(crate) struct Started<'a> {
    pub(crate) lock: &'a EngineLock,
    pub(crate) run: RunRecord,
    /// When the run began, before its lock was taken.
    pub(crate) at: Instant,
    /// Runs a stop left `running`, marked interrupted with this one's start.
    pub(crate) interrupted: Vec<Uuid>,
}

impl Engine {
    fn holder(&self, kind: LockKind, id: Uuid) -> LockHolder {
        LockHolder {
            kind,
            id,
            host: self.inner.host.clone(),
            pid: std::process::id(),
            instance: crate::store::instance().to_owned(),
            acquired_at: Utc::now(),
        }
    }

    /// The lock, taken: renewed every third of its time to live until released.
    fn hold(&self, id: Uuid) -> EngineLock {
        let store = self.inner.store.clone();
        let ttl = self.inner.settings.lock_ttl;
        let hb_store = store.clone();
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match hb_store.renew_lock(id, Utc::now()).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(%id, "the engine lock was taken over while held"),
                    Err(e) => tracing::warn!(error = %e, %id, "could not renew the engine lock"),
                }
            }
        });
        EngineLock {
            store,
            id,
            heartbeat,
            released: Default::default(),
        }
    }

    /// Takes the engine lock for a backup or rollback, or says who holds it.
    pub async fn lock(&self, kind: LockKind, id: Uuid) -> Result<EngineLock, EngineError> {
        let holder = self.holder(kind, id);
        match self.inner.store.try_lock(&holder, self.inner.settings.lock_ttl).await? {
            LockAttempt::Held(h) => return Err(EngineError::Busy(h)),
            LockAttempt::Acquired { replaced: Some(dead) } => {
                tracing::warn!(%dead, "took over the engine lock from a holder that stopped");
            }
            LockAttempt::Acquired { replaced: None } => {}
        }
        Ok(self.hold(id))
    }

    /// Takes the engine lock for `run` and writes the run's row (marking the runs a stop
    /// left `running`): in one transaction when the lock is free, else through
    /// [`Engine::lock`] (which says who holds it, or takes over from a holder that
    /// stopped) and then the row. Returns the lock and the runs marked interrupted.
    pub(crate) async fn lock_starting(
        &self,
        kind: LockKind,
        run: &RunRecord,
    ) -> Result<(EngineLock, Vec<Uuid>), EngineError> {
        let store = &self.inner.store;
        if let Some(interrupted) = store.start_run(run, Some(&self.holder(kind, run.id))).await? {
            return Ok((self.hold(run.id), interrupted));
        }
        let lock = self.lock(kind, run.id).await?;
        match store.start_run(run, None).await {
            Ok(interrupted) => Ok((lock, interrupted.unwrap_or_default())),
            Err(e) => {
                lock.release().await;
                Err(e.into())
            }
        }
    }
}
