//! A task's progress: persisted at every step and sent to subscribers.

use super::*;

/// A task's progress: persisted at every step and sent to subscribers.
pub(super) struct Progress {
    pub(super) engine: Engine,
    pub(super) task: RollbackTask,
    pub(super) tx: watch::Sender<RollbackTask>,
    pub(super) touched: bool,
    /// Secret values never recorded: command output and messages are scrubbed of them
    /// (a validation command may echo the line it rejects).
    pub(super) scrub: Vec<String>,
    /// The span of the stage running now: its work and its log lines are in it.
    pub(super) span: tracing::Span,
}

impl Progress {
    /// `work`, in the current stage's span.
    pub(super) fn in_stage<F: std::future::Future>(&self, work: F) -> tracing::instrument::Instrumented<F> {
        tracing::Instrument::instrument(work, self.span.clone())
    }

    pub(super) async fn publish(&mut self) {
        if let Err(e) = self.engine.store().save_rollback_task(&self.task, None).await {
            tracing::error!(task = %self.task.id, error = %e, "could not record the rollback's progress");
        }
        self.tx.send_replace(self.task.clone());
    }

    pub(super) async fn begin(&mut self, stage: RollbackStage) {
        self.task.state = stage;
        self.task.stages.push(StageRecord {
            stage,
            started_at: Utc::now(),
            finished_at: None,
            ok: false,
            message: String::new(),
            output: String::new(),
        });
        self.span = tracing::info_span!("stage", stage = stage.as_str());
        tracing::info!(parent: &self.span, task = %self.task.id, stage = stage.as_str(), "rollback stage started");
        self.publish().await;
    }

    pub(super) async fn end(&mut self, ok: bool, message: impl Into<String>, output: String) {
        let message = crate::secrets::scrub(&message.into(), &self.scrub);
        let output = crate::secrets::scrub(&output, &self.scrub);
        if let Some(st) = self.task.stages.last_mut() {
            st.finished_at = Some(Utc::now());
            st.ok = ok;
            st.message = message.clone();
            st.output = output;
        }
        tracing::info!(parent: &self.span, task = %self.task.id, stage = self.task.state.as_str(), ok, detail = %message, "rollback stage ended");
        self.publish().await;
    }

    pub(super) async fn finish(&mut self, state: RollbackStage, error: Option<String>, revert_succeeded: bool) {
        self.task.state = state;
        self.task.error = error.map(|e| crate::secrets::scrub(&e, &self.scrub));
        self.task.revert_succeeded = revert_succeeded;
        let now = Utc::now();
        let took = (now - self.task.requested_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        self.task.completed_at = Some(now);
        self.task.duration_seconds = Some(took);
        tracing::info!(
            task = %self.task.id,
            state = state.as_str(),
            revert_succeeded,
            duration_ms = (took * 1000.0) as u64,
            error = self.task.error.as_deref().unwrap_or(""),
            "rollback finished"
        );
    }

    /// Records the terminal state and releases the lock in one transaction, then tells the
    /// subscribers: whoever sees the end of a rollback can start the next one at once.
    pub(super) async fn conclude(&mut self, lock: EngineLock) {
        lock.stop_renewing();
        if let Err(e) = self
            .engine
            .store()
            .save_rollback_task(&self.task, Some(lock.id()))
            .await
        {
            tracing::error!(task = %self.task.id, error = %e, "could not record the rollback's end");
            lock.release().await;
        }
        self.tx.send_replace(self.task.clone());
    }
}
