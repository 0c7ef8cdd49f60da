//! Reading and following tasks, and recovering those a stop interrupted.

use super::*;

impl Engine {
    /// A task's current state (from this process if it runs here, else the database).
    pub async fn rollback_task(&self, id: Uuid) -> Result<Option<RollbackTask>, EngineError> {
        if let Some(tx) = self.live_rollback(id) {
            return Ok(Some(tx.borrow().clone()));
        }
        Ok(self.store().rollback_task(id).await?)
    }

    /// The task's states: first the current one, then each change, ending after the
    /// terminal state. A task running on another replica is followed through the database.
    pub async fn watch_rollback(
        &self,
        id: Uuid,
    ) -> Result<impl Stream<Item = RollbackTask> + Send + 'static, EngineError> {
        enum Source {
            Live(watch::Receiver<RollbackTask>),
            Poll(Engine),
        }
        let (first, source) = match self.live_rollback(id) {
            Some(tx) => {
                let mut rx = tx.subscribe();
                let first = rx.borrow_and_update().clone();
                (first, Source::Live(rx))
            }
            None => {
                let task = self
                    .store()
                    .rollback_task(id)
                    .await?
                    .ok_or_else(|| EngineError::NotFound(format!("task_id: no rollback task {id}")))?;
                (task, Source::Poll(self.clone()))
            }
        };
        let state = Some((Some(first), source, None::<RollbackTask>));
        Ok(futures::stream::unfold(state, move |state| async move {
            let (pending, mut source, last) = state?;
            if let Some(task) = pending {
                let done = task.state.is_terminal();
                let next = if done {
                    None
                } else {
                    Some((None, source, Some(task.clone())))
                };
                return Some((task, next));
            }
            loop {
                let task = match &mut source {
                    Source::Live(rx) => {
                        if rx.changed().await.is_err() {
                            let t = rx.borrow().clone();
                            // The sender is gone: the last value is final.
                            return if Some(&t) == last.as_ref() {
                                None
                            } else {
                                Some((t, None))
                            };
                        }
                        rx.borrow_and_update().clone()
                    }
                    Source::Poll(engine) => {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                        match engine.store().rollback_task(id).await {
                            Ok(Some(t)) => t,
                            _ => continue,
                        }
                    }
                };
                if Some(&task) == last.as_ref() {
                    continue;
                }
                let done = task.state.is_terminal();
                let next = if done {
                    None
                } else {
                    Some((None, source, Some(task.clone())))
                };
                return Some((task, next));
            }
        }))
    }

    /// At start: rollbacks left unfinished by a stopped server. One that had passed
    /// Snapshot is reverted to its snapshot; every one is marked failed ("interrupted").
    pub async fn recover_interrupted_rollbacks(&self) -> Result<usize, EngineError> {
        let mut recovered = 0;
        for task in self.store().unfinished_rollback_tasks().await? {
            if self.live_rollback(task.id).is_some() {
                continue;
            }
            // Its own lock id: only taken when the process that ran it is gone.
            let lock = match self.lock(LockKind::Rollback, task.id).await {
                Ok(l) => l,
                Err(EngineError::Busy(holder)) => {
                    tracing::info!(task = %task.id, %holder, "an unfinished rollback is still held; not recovering it now");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let interrupted_in = task.state;
            let domains = task.domains.clone();
            let dir = snapshot_dir(self.settings(), task.id);
            let (tx, _) = watch::channel(task.clone());
            let mut progress = Progress {
                engine: self.clone(),
                task,
                tx,
                touched: false,
                scrub: Vec::new(),
                span: tracing::Span::none(),
            };
            let passed_snapshot = dir.join("complete").exists()
                && progress.task.stages.iter().any(|s| {
                    matches!(
                        s.stage,
                        RollbackStage::Applying
                            | RollbackStage::Reloading
                            | RollbackStage::Verifying
                            | RollbackStage::Reverting
                    )
                });
            if passed_snapshot {
                let (reverted, message) = self.revert(&mut progress, &domains).await;
                let error = format!(
                    "interrupted: the server stopped during {}; {message}",
                    interrupted_in.as_str()
                );
                progress.finish(RollbackStage::Failed, Some(error), reverted).await;
            } else {
                let error = format!(
                    "interrupted: the server stopped during {}, before any file was written",
                    interrupted_in.as_str()
                );
                progress.finish(RollbackStage::Failed, Some(error), false).await;
            }
            let _ = blocking(move || std::fs::remove_dir_all(dir)).await;
            progress.conclude(lock).await;
            self.notify_rollback(&progress.task);
            recovered += 1;
        }
        self.remove_ended_snapshots().await?;
        Ok(recovered)
    }

    /// The snapshots of rollbacks whose end is recorded: a rollback removes its own just
    /// after, so one is left only by a server stopped in between.
    async fn remove_ended_snapshots(&self) -> Result<(), EngineError> {
        let root = self.settings().data_dir.join("rollback");
        let names = blocking(move || {
            std::fs::read_dir(root)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .await?;
        for id in names.iter().filter_map(|n| n.to_str()?.parse::<Uuid>().ok()) {
            if self.live_rollback(id).is_none()
                && self
                    .store()
                    .rollback_task(id)
                    .await?
                    .is_some_and(|t| t.completed_at.is_some())
            {
                self.remove_snapshot(id).await;
            }
        }
        Ok(())
    }
}
