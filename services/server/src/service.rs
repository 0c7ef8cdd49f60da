//! `configbackup.v1.ConfigBackup` over the engine. Each handler: who is calling and may
//! they, validate the request, call the engine, convert the answer.

use std::pin::Pin;
use std::sync::Arc;

use config_backup_core::drill::DrillParams;
use config_backup_core::engine::BackupParams;
use config_backup_core::store::{AuditRow, Trigger};
use config_backup_core::{Actor, Engine};
use config_backup_proto::v1 as pb;
use config_backup_proto::v1::config_backup_server::ConfigBackup;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::ApiError;
use crate::answers::PageMemo;
use crate::auth::{AuthError, Caller, Role};
use crate::refusals::{CallContext, Refusal, Refusals};
use crate::{convert, params};

/// A History page's entries and its next page token, as answered.
type HistoryPage = (Vec<pb::HistoryEntry>, String);

/// The service.
#[derive(Debug, Clone)]
pub struct ConfigBackupService {
    engine: Engine,
    refusals: Refusals,
    /// History answers made from the pages the engine keeps ([`crate::answers`]).
    history_answers: Arc<PageMemo<AuditRow, HistoryPage>>,
}

impl ConfigBackupService {
    /// A service over the engine, counting its refusals in `refusals`.
    pub fn new(engine: Engine, refusals: Refusals) -> Self {
        ConfigBackupService {
            engine,
            refusals,
            history_answers: Arc::default(),
        }
    }

    /// The caller the auth interceptor attached, checked against the allowed roles; a
    /// refusal is logged and counted.
    fn caller<T>(&self, req: &Request<T>, call: &str, allowed: &[Role]) -> Result<Caller, ApiError> {
        let context = || {
            let mut c = req.extensions().get::<CallContext>().cloned().unwrap_or_default();
            call.clone_into(&mut c.method);
            c
        };
        let Some(caller) = req.extensions().get::<Caller>().cloned() else {
            let e = AuthError::Unauthenticated("missing authorization".to_owned());
            self.refusals
                .record(Refusal::Unauthenticated, &context(), None, &e.to_string());
            return Err(e.into());
        };
        if let Err(e) = caller.require(call, allowed) {
            self.refusals
                .record(Refusal::PermissionDenied, &context(), Some(&caller.sub), &e.to_string());
            return Err(e.into());
        }
        Ok(caller)
    }
}

const READERS: &[Role] = &[Role::Admin, Role::Noc];
const BACKUP: &[Role] = &[Role::Admin, Role::Noc, Role::Scheduler];
/// A restore drill reads every secret of the site (to unseal and validate): admins, and
/// the schedule.
const DRILL: &[Role] = &[Role::Admin, Role::Scheduler];

type RollbackStatusStream = Pin<Box<dyn Stream<Item = Result<pb::RollbackStatusResponse, Status>> + Send>>;

/// The call's request id (set by the request-id layer from the caller's `x-request-id`, or
/// made up), for the audit record of the run or rollback it starts; printable ASCII, at
/// most 64 characters, or none.
fn request_id<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

#[tonic::async_trait]
impl ConfigBackup for ConfigBackupService {
    async fn backup(&self, req: Request<pb::BackupRequest>) -> Result<Response<pb::BackupResponse>, Status> {
        let who = self.caller(&req, "Backup", BACKUP)?;
        let (trigger, actor) = match who.role {
            Role::Scheduler => (Trigger::Scheduled, Actor::System),
            _ => (Trigger::Manual, Actor::User(who.sub)),
        };
        let request_id = request_id(&req);
        let req = req.into_inner();
        if let Some(since) = &req.unless_succeeded_since {
            let since = convert::from_timestamp(since).ok_or_else(|| {
                ApiError::from(params::invalid_field("unless_succeeded_since", "not a valid timestamp"))
            })?;
            let last = self.engine.last_success_at().await.map_err(ApiError::from)?;
            if last.is_some_and(|t| t >= since) {
                return Ok(Response::new(pb::BackupResponse {
                    report: None,
                    skipped: true,
                }));
            }
        }
        let params = BackupParams::new(trigger, actor, req.domains).with_request_id(request_id);
        let report = self.engine.backup(params).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::BackupResponse {
            report: Some(convert::backup_report(&report)),
            skipped: false,
        }))
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        self.caller(&req, "Status", READERS)?;
        let status = match params::site("site", &req.get_ref().site)? {
            Some(site) => self.engine.site_status(&site).await,
            None => self.engine.status().await,
        }
        .map_err(ApiError::from)?;
        Ok(Response::new(convert::status(&status)))
    }

    async fn history(&self, req: Request<pb::HistoryRequest>) -> Result<Response<pb::HistoryResponse>, Status> {
        self.caller(&req, "History", READERS)?;
        let (query, fingerprint) = params::history_query(req.get_ref())?;
        let page = query.limit as usize;
        let mut fetch = query.clone();
        fetch.limit += 1;
        let rows = self.engine.history(&fetch).await.map_err(ApiError::from)?;
        let (entries, next_page_token) = self.history_answers.get_or_make(&rows, page, &fingerprint, || {
            // One row more than the page was asked for: whether there is a next page.
            let shown = &rows[..rows.len().min(page)];
            let next_page_token = if rows.len() > page {
                shown
                    .last()
                    .map(|r| {
                        let cursor = config_backup_core::store::HistoryCursor {
                            seq: r.seq,
                            config_file: r.config_file.clone(),
                        };
                        params::page_token(&cursor, &fingerprint)
                    })
                    .unwrap_or_default()
            } else {
                String::new()
            };
            (shown.iter().map(convert::history_entry).collect(), next_page_token)
        });
        Ok(Response::new(pb::HistoryResponse {
            entries,
            next_page_token,
            clear_secrets_notice: self.engine.clear_history().map(|c| c.notice()).unwrap_or_default(),
        }))
    }

    async fn diff(&self, req: Request<pb::DiffRequest>) -> Result<Response<pb::DiffResponse>, Status> {
        let who = self.caller(&req, "Diff", READERS)?;
        let query = params::diff_query(req.get_ref())?;
        if query.reveal_secrets {
            who.require("Diff with reveal_secrets", &[Role::Admin])
                .map_err(ApiError::from)?;
        }
        let result = self
            .engine
            .diff(query, &Actor::User(who.sub))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(convert::diff(&result)))
    }

    async fn rollback(&self, req: Request<pb::RollbackRequest>) -> Result<Response<pb::RollbackResponse>, Status> {
        let who = self.caller(&req, "Rollback", &[Role::Admin])?;
        let requested_by: uuid::Uuid = who.sub.parse().map_err(|_| {
            ApiError::from(AuthError::PermissionDenied(
                "Rollback needs a token whose sub is the admin's user UUID (it is recorded)".to_owned(),
            ))
        })?;
        let mut params = params::rollback(req.get_ref(), requested_by)?;
        params.request_id = request_id(&req);
        let start = self.engine.rollback(params).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::RollbackResponse {
            task: Some(convert::rollback_task(&start.task)),
            plan: Some(convert::rollback_plan(&start.plan)),
        }))
    }

    type RollbackStatusStream = RollbackStatusStream;

    async fn rollback_status(
        &self,
        req: Request<pb::RollbackStatusRequest>,
    ) -> Result<Response<Self::RollbackStatusStream>, Status> {
        self.caller(&req, "RollbackStatus", READERS)?;
        let id = params::task_id(&req.get_ref().task_id)?;
        let states = self.engine.watch_rollback(id).await.map_err(ApiError::from)?;
        let stream = states.map(|t| {
            Ok(pb::RollbackStatusResponse {
                task: Some(convert::rollback_task(&t)),
            })
        });
        Ok(Response::new(Box::pin(stream) as Self::RollbackStatusStream))
    }

    async fn verify(&self, req: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        let who = self.caller(&req, "Verify", DRILL)?;
        let (trigger, actor) = match who.role {
            Role::Scheduler => (Trigger::Scheduled, Actor::System),
            _ => (Trigger::Manual, Actor::User(who.sub)),
        };
        let params = DrillParams {
            trigger,
            actor,
            request_id: request_id(&req),
        };
        let drill = self.engine.drill(params).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::VerifyResponse {
            drill: Some(convert::drill(&drill)),
        }))
    }

    async fn list_drills(
        &self,
        req: Request<pb::ListDrillsRequest>,
    ) -> Result<Response<pb::ListDrillsResponse>, Status> {
        self.caller(&req, "ListDrills", READERS)?;
        let limit = params::drill_limit(req.get_ref().limit)?;
        let drills = self.engine.drills(limit).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListDrillsResponse {
            drills: drills.iter().map(convert::drill).collect(),
        }))
    }

    async fn list_sites(&self, req: Request<pb::ListSitesRequest>) -> Result<Response<pb::ListSitesResponse>, Status> {
        self.caller(&req, "ListSites", READERS)?;
        let sites = self.engine.list_sites().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSitesResponse {
            sites: sites.iter().map(convert::site_summary).collect(),
        }))
    }
}
