//! Engine types to API messages. Only this module knows both.

use chrono::{DateTime, Utc};
use config_backup_core::BackupReport;
use config_backup_core::engine::{DomainReport, EngineStatus, PushReport};
use config_backup_core::repo::{FileRecord, mode_text};
use config_backup_core::store::{PushOutcome, RunOutcome, RunRecord, Trigger};
use config_backup_proto::v1 as pb;

/// A protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A protobuf timestamp back to chrono; None if out of range.
pub fn from_timestamp(t: &pbjson_types::Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    DateTime::from_timestamp(t.seconds, t.nanos as u32)
}

fn trigger(t: Trigger) -> pb::RunTrigger {
    match t {
        Trigger::Scheduled => pb::RunTrigger::Scheduled,
        Trigger::Manual => pb::RunTrigger::Manual,
        Trigger::Rollback => pb::RunTrigger::Rollback,
    }
}

fn outcome(o: RunOutcome) -> pb::RunOutcome {
    match o {
        RunOutcome::Running => pb::RunOutcome::Running,
        RunOutcome::Success => pb::RunOutcome::Success,
        RunOutcome::Partial => pb::RunOutcome::Partial,
        RunOutcome::Failed => pb::RunOutcome::Failed,
        RunOutcome::Interrupted => pb::RunOutcome::Interrupted,
    }
}

fn push_outcome(o: PushOutcome) -> pb::PushOutcome {
    match o {
        PushOutcome::Pushed => pb::PushOutcome::Pushed,
        PushOutcome::Failed => pb::PushOutcome::Failed,
        PushOutcome::Diverged => pb::PushOutcome::Diverged,
        PushOutcome::NotAttempted => pb::PushOutcome::NotAttempted,
    }
}

fn u32_of(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A run summary.
pub fn run_summary(r: &RunRecord) -> pb::RunSummary {
    pb::RunSummary {
        run_id: r.id.to_string(),
        trigger: trigger(r.trigger) as i32,
        requested_by: r.requested_by.clone(),
        started_at: Some(timestamp(r.started_at)),
        finished_at: r.finished_at.map(timestamp),
        outcome: outcome(r.outcome) as i32,
        error: r.error.clone().unwrap_or_default(),
        push_outcome: r.push_outcome.map(push_outcome).unwrap_or(pb::PushOutcome::Unspecified) as i32,
        push_error: r.push_error.clone().unwrap_or_default(),
        files_added: u32_of(r.files_added),
        files_modified: u32_of(r.files_modified),
        files_deleted: u32_of(r.files_deleted),
        files_unchanged: u32_of(r.files_unchanged),
        commits: u32_of(r.commits),
        request_id: r.request_id.clone().unwrap_or_default(),
    }
}

fn file_change(f: &FileRecord) -> pb::FileChange {
    pb::FileChange {
        path: f.path.to_string(),
        change_type: f.kind.as_str().to_owned(),
        old_sha256: f.old.as_ref().map(|e| e.sha256.clone()).unwrap_or_default(),
        new_sha256: f.new.as_ref().map(|e| e.sha256.clone()).unwrap_or_default(),
        old_mode: f.old.as_ref().map(|e| mode_text(e.mode)).unwrap_or_default(),
        new_mode: f.new.as_ref().map(|e| mode_text(e.mode)).unwrap_or_default(),
        old_metadata: f.old.as_ref().and_then(|e| e.meta.as_ref()).map(file_metadata),
        new_metadata: f.new.as_ref().and_then(|e| e.meta.as_ref()).map(file_metadata),
        metadata_changes: f.metadata_changes(),
        summary: f.summary.summary.clone(),
        service_changes: service_changes(&f.summary),
    }
}

/// The structured changes of a summary.
pub fn service_changes(s: &config_backup_core::summary::Summary) -> Vec<pb::ServiceChange> {
    s.changes
        .iter()
        .map(|c| pb::ServiceChange {
            kind: c.kind.clone(),
            scope: c.scope.clone(),
            added: c.added,
            removed: c.removed,
            changed: c.changed,
        })
        .collect()
}

fn file_metadata(m: &config_backup_core::metadata::FileMeta) -> pb::FileMetadata {
    pb::FileMetadata {
        r#type: m.kind.as_str().to_owned(),
        mode: m.mode_text(),
        uid: m.uid,
        gid: m.gid,
        owner: m.owner.to_string(),
        group: m.group.to_string(),
    }
}

fn domain_report(d: &DomainReport) -> pb::DomainReport {
    use config_backup_core::domain::ChangeKind::*;
    pb::DomainReport {
        domain: d.domain.map(|x| x.as_str().to_owned()).unwrap_or_default(),
        commit_hash: d.commit.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        commit_message: d.message.clone(),
        previous_hash: d.previous.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        files_added: d.count(Added) as u32,
        files_modified: d.count(Modified) as u32,
        files_deleted: d.count(Deleted) as u32,
        files_unchanged: d.count(Unchanged) as u32,
        changes: d.changes.iter().map(file_change).collect(),
        unmatched_patterns: d.unmatched.clone(),
        error: d.error.clone().unwrap_or_default(),
        warnings: d.warnings.clone(),
        security_warnings: d.security_warnings.clone(),
    }
}

fn push_report(p: &PushReport) -> pb::PushReport {
    pb::PushReport {
        outcome: push_outcome(p.outcome) as i32,
        error: p.error.clone().unwrap_or_default(),
        unpushed_commits: p.unpushed as u32,
        remote_head: p.remote_head.as_ref().map(|c| c.to_string()).unwrap_or_default(),
    }
}

/// A backup report.
pub fn backup_report(r: &BackupReport) -> pb::BackupReport {
    let duration = r
        .run
        .finished_at
        .map(|f| (f - r.run.started_at).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .unwrap_or(0.0);
    pb::BackupReport {
        run_id: r.run.id.to_string(),
        trigger: trigger(r.run.trigger) as i32,
        requested_by: r.run.requested_by.clone(),
        started_at: Some(timestamp(r.run.started_at)),
        finished_at: r.run.finished_at.map(timestamp),
        duration_seconds: duration,
        outcome: outcome(r.run.outcome) as i32,
        error: r.run.error.clone().unwrap_or_default(),
        domains: r.domains.iter().map(domain_report).collect(),
        push: Some(push_report(&r.push)),
    }
}

/// The status.
pub fn status(s: &EngineStatus) -> pb::StatusResponse {
    pb::StatusResponse {
        last_run: s.last_run.as_ref().map(run_summary),
        last_successful_run: s.last_successful_run.as_ref().map(run_summary),
        domains: s
            .domains
            .iter()
            .map(|(d, summary, tracked)| pb::DomainStatus {
                domain: d.as_str().to_owned(),
                last_commit_hash: summary.as_ref().map(|x| x.last_commit.clone()).unwrap_or_default(),
                last_commit_at: summary.as_ref().map(|x| timestamp(x.last_at)),
                last_change_commit_hash: summary
                    .as_ref()
                    .and_then(|x| x.last_change_commit.clone())
                    .unwrap_or_default(),
                last_changed_at: summary.as_ref().and_then(|x| x.last_change_at).map(timestamp),
                tracked_files: *tracked as u32,
                last_error: s.domain_errors.get(d).cloned().unwrap_or_default(),
                last_proven_at: s.proofs.get(d).and_then(|p| p.last_proven_at).map(timestamp),
                last_drill_state: s
                    .proofs
                    .get(d)
                    .map_or(pb::DrillState::Unspecified, |p| drill_state(p.last_proven))
                    as i32,
                last_drill_at: s.proofs.get(d).map(|p| timestamp(p.last_drill_at)),
                last_drill_causes: s.proofs.get(d).map(|p| p.last_causes.clone()).unwrap_or_default(),
            })
            .collect(),
        unpushed_commits: s.unpushed as u32,
        last_push_at: s.last_push_at.map(timestamp),
        last_push_error: s.last_push_error.clone().unwrap_or_default(),
        next_scheduled_at: Some(timestamp(s.next_scheduled_at)),
        schedule_enabled: s.schedule_enabled,
        remote: s.remote.clone(),
        branch: s.branch.clone(),
        running: s.running.as_ref().map(|h| h.to_string()).unwrap_or_default(),
        last_mail_at: s.last_mail.as_ref().map(|m| timestamp(m.sent_at)),
        last_mail_subject: s.last_mail.as_ref().map(|m| m.subject.clone()).unwrap_or_default(),
        last_mail_error: s.last_mail.as_ref().and_then(|m| m.error.clone()).unwrap_or_default(),
        signing_enabled: s.signing_key.is_some(),
        signing_key_fingerprint: s.signing_key.clone().unwrap_or_default(),
        clear_secrets_notice: s.clear_history.as_ref().map(|c| c.notice()).unwrap_or_default(),
        interrupted: s.interrupted.as_ref().map(|i| i.to_string()).unwrap_or_default(),
        site: s.site.clone(),
    }
}

/// One site of the fleet.
pub fn site_summary(s: &config_backup_core::engine::SiteStatus) -> pb::SiteSummary {
    pb::SiteSummary {
        site: s.site.clone(),
        host: s.host.clone(),
        seen_at: Some(timestamp(s.seen_at)),
        last_run: s.last_run.as_ref().map(run_summary),
        unpushed_commits: s
            .last_run
            .as_ref()
            .map(|r| u32::try_from(r.unpushed_commits).unwrap_or(u32::MAX))
            .unwrap_or(0),
        next_scheduled_at: s.next_scheduled_at.map(timestamp),
        running: s.running.as_ref().map(|h| h.to_string()).unwrap_or_default(),
        domains: s
            .proofs
            .iter()
            .map(|p| pb::DomainProof {
                domain: p.domain.as_str().to_owned(),
                last_proven_at: p.last_proven_at.map(timestamp),
                last_drill_state: drill_state(p.last_proven) as i32,
                last_drill_at: Some(timestamp(p.last_drill_at)),
            })
            .collect(),
    }
}

fn drill_state(proven: bool) -> pb::DrillState {
    if proven {
        pb::DrillState::Proven
    } else {
        pb::DrillState::Failed
    }
}

/// A restore drill.
pub fn drill(d: &config_backup_core::store::DrillRecord) -> pb::Drill {
    pb::Drill {
        id: d.id.to_string(),
        started_at: Some(timestamp(d.started_at)),
        finished_at: Some(timestamp(d.finished_at)),
        trigger: trigger(d.trigger) as i32,
        requested_by: d.requested_by.clone(),
        request_id: d.request_id.clone().unwrap_or_default(),
        remote_head: d.remote_head.clone().unwrap_or_default(),
        state: drill_state(d.proven()) as i32,
        error: d.error.clone().unwrap_or_default(),
        domains: d
            .domains
            .iter()
            .map(|x| pb::DomainDrill {
                domain: x.domain.as_str().to_owned(),
                state: drill_state(x.proven()) as i32,
                commit_hash: x.commit.clone().unwrap_or_default(),
                files: u32::try_from(x.files).unwrap_or(u32::MAX),
                causes: x.causes.clone(),
            })
            .collect(),
        notes: d.notes.clone(),
    }
}

/// A History entry.
pub fn history_entry(r: &config_backup_core::store::AuditRow) -> pb::HistoryEntry {
    use config_backup_core::metadata::FileMeta;
    let meta = r.file_meta.as_deref().and_then(FileMeta::from_record);
    let previous = r.previous_file_meta.as_deref().and_then(FileMeta::from_record);
    let summary = config_backup_core::summary::Summary::decode(
        r.change_summary.as_deref().unwrap_or_default(),
        r.change_detail.as_deref().unwrap_or_default(),
    );
    pb::HistoryEntry {
        id: r.id.to_string(),
        backup_date: r.backup_date.to_string(),
        backed_up_at: Some(timestamp(r.backed_up_at)),
        file: r.config_file.clone(),
        commit_hash: r.commit_hash.clone(),
        change_type: r.change_type.as_str().to_owned(),
        domain: r.domain.as_str().to_owned(),
        commit_message: r.commit_message.clone(),
        previous_hash: r.previous_hash.clone().unwrap_or_default(),
        backed_up_by: r.backed_up_by.clone(),
        file_sha256: r.file_sha256.clone().unwrap_or_default(),
        previous_file_sha256: r.previous_file_sha256.clone().unwrap_or_default(),
        run_id: r.run_id.map(|u| u.to_string()).unwrap_or_default(),
        metadata: meta.as_ref().map(file_metadata),
        previous_metadata: previous.as_ref().map(file_metadata),
        metadata_changes: match (&previous, &meta) {
            (Some(o), Some(n)) => config_backup_core::metadata::describe(o, n),
            _ => Vec::new(),
        },
        summary: summary.summary.clone(),
        service_changes: service_changes(&summary),
    }
}

/// A Diff answer.
pub fn diff(d: &config_backup_core::diff::DiffResult) -> pb::DiffResponse {
    pb::DiffResponse {
        commit1: d.commit1.to_string(),
        commit2: d.commit2.to_string(),
        files: d
            .files
            .iter()
            .map(|f| pb::FileDiff {
                path: f.path.clone(),
                domain: f.domain.map(|x| x.as_str().to_owned()).unwrap_or_default(),
                change_type: f.kind.as_str().to_owned(),
                additions: f.additions as u32,
                deletions: f.deletions as u32,
                patch: f.patch.clone(),
                binary: f.binary,
                truncated: f.truncated,
                old_mode: f.old_mode.map(mode_text).unwrap_or_default(),
                new_mode: f.new_mode.map(mode_text).unwrap_or_default(),
                sealed: f.sealed,
                metadata_changes: f.metadata_changes.clone(),
                summary: f.summary.summary.clone(),
                service_changes: service_changes(&f.summary),
            })
            .collect(),
        files_changed: d.files.len() as u32,
        additions: d.additions as u32,
        deletions: d.deletions as u32,
        truncated: d.truncated,
    }
}

fn rollback_state(s: config_backup_core::store::RollbackStage) -> pb::RollbackState {
    use config_backup_core::store::RollbackStage as S;
    match s {
        S::Pending => pb::RollbackState::Pending,
        S::Validating => pb::RollbackState::Validating,
        S::Snapshot => pb::RollbackState::Snapshot,
        S::Applying => pb::RollbackState::Applying,
        S::Reloading => pb::RollbackState::Reloading,
        S::Verifying => pb::RollbackState::Verifying,
        S::Reverting => pb::RollbackState::Reverting,
        S::Success => pb::RollbackState::Success,
        S::Failed => pb::RollbackState::Failed,
    }
}

/// A rollback task.
pub fn rollback_task(t: &config_backup_core::store::RollbackTask) -> pb::RollbackTask {
    pb::RollbackTask {
        task_id: t.id.to_string(),
        domains: t.domains.iter().map(|d| d.as_str().to_owned()).collect(),
        target_hash: t.target_hash.clone(),
        state: rollback_state(t.state) as i32,
        stages: t
            .stages
            .iter()
            .map(|s| pb::RollbackStage {
                state: rollback_state(s.stage) as i32,
                started_at: Some(timestamp(s.started_at)),
                finished_at: s.finished_at.map(timestamp),
                ok: s.ok,
                message: s.message.clone(),
                output: s.output.clone(),
            })
            .collect(),
        requested_by: t.requested_by.to_string(),
        reason: t.reason.clone(),
        requested_at: Some(timestamp(t.requested_at)),
        completed_at: t.completed_at.map(timestamp),
        duration_seconds: t.duration_seconds.unwrap_or(0.0),
        error: t.error.clone().unwrap_or_default(),
        revert_succeeded: t.revert_succeeded,
        dry_run: t.dry_run,
        request_id: t.request_id.clone().unwrap_or_default(),
        warnings: t.warnings.clone(),
    }
}

/// A rollback plan.
pub fn rollback_plan(p: &config_backup_core::rollback::Plan) -> pb::RollbackPlan {
    pb::RollbackPlan {
        files: p
            .files
            .iter()
            .map(|f| pb::PlannedFile {
                path: f.path.to_string(),
                action: f.action.as_str().to_owned(),
                mode: mode_text(f.mode),
                patch: f.patch.clone(),
                metadata_changes: f.metadata_changes.clone(),
                summary: f.summary.clone(),
            })
            .collect(),
        warnings: p.warnings.clone(),
        validation_ok: p.validation_ok,
        validation_output: p.validation_output.clone(),
    }
}
