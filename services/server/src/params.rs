//! Requests to engine queries: every field is checked here, at the edge, and a bad one
//! is refused with INVALID_ARGUMENT naming it and what is allowed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use config_backup_core::diff::{DiffLimits, DiffQuery};
use config_backup_core::domain::ChangeKind;
use config_backup_core::store::{HistoryCursor, HistoryQuery};
use config_backup_core::{CommitPrefix, Domain, EngineError, RepoPath};
use config_backup_proto::v1 as pb;
use sha2::{Digest, Sha256};

use crate::ApiError;
use crate::convert::from_timestamp;

/// Default and largest History page.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// Largest History page.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// An invalid-argument error naming the field.
pub fn invalid_field(field: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument {
        field,
        message: message.into(),
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::from(invalid_field(field, message))
}

/// An optional domain.
pub fn domain(field: &'static str, value: &str) -> Result<Option<Domain>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e: config_backup_core::domain::UnknownDomain| invalid(field, e.to_string()))
}

/// An optional path.
pub fn path(field: &'static str, value: &str) -> Result<Option<RepoPath>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e: config_backup_core::domain::BadRepoPath| invalid(field, e.to_string()))
}

/// A required commit.
pub fn commit(field: &'static str, value: &str) -> Result<CommitPrefix, ApiError> {
    if value.is_empty() {
        return Err(invalid(field, "required: a commit hash of 7 to 40 hexadecimal digits"));
    }
    value
        .parse()
        .map_err(|e: config_backup_core::domain::BadCommitPrefix| invalid(field, e.to_string()))
}

/// The History query and the fingerprint of its filters (a page token is only valid
/// with the filters it was issued for).
pub fn history_query(r: &pb::HistoryRequest) -> Result<(HistoryQuery, String), ApiError> {
    let since = r
        .since
        .as_ref()
        .map(|t| from_timestamp(t).ok_or_else(|| invalid("since", "not a valid timestamp")))
        .transpose()?;
    let until = r
        .until
        .as_ref()
        .map(|t| from_timestamp(t).ok_or_else(|| invalid("until", "not a valid timestamp")))
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        return Err(invalid("until", "must be after since"));
    }
    let change_type = if r.change_type.is_empty() {
        None
    } else {
        Some(ChangeKind::parse(&r.change_type).ok_or_else(|| {
            invalid(
                "change_type",
                format!(
                    "{} is not a change type: allowed values are added, modified, deleted, unchanged",
                    config_backup_core::domain::quote_input(&r.change_type)
                ),
            )
        })?)
    };
    let limit = match i64::from(r.page_size) {
        0 => DEFAULT_PAGE_SIZE,
        n if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        n => {
            return Err(invalid(
                "page_size",
                format!("{n} is out of range: allowed 1 to {MAX_PAGE_SIZE} (0 for the default {DEFAULT_PAGE_SIZE})"),
            ));
        }
    };
    let mut q = HistoryQuery {
        domain: domain("domain", &r.domain)?,
        path: path("path", &r.path)?.map(|p| p.to_string()),
        since,
        until,
        change_type,
        include_unchanged: r.include_unchanged,
        before: None,
        limit,
        site: site("site", &r.site)?,
    };
    let fingerprint = {
        let filters = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}|{:?}",
            q.domain, q.path, q.since, q.until, q.change_type, q.include_unchanged, q.limit, q.site
        );
        hex::encode(&Sha256::digest(filters.as_bytes())[..6])
    };
    if !r.page_token.is_empty() {
        q.before = Some(parse_page_token(&r.page_token, &fingerprint)?);
    }
    Ok((q, fingerprint))
}

/// A site name, or `None` for empty (this server's own).
pub fn site(field: &'static str, value: &str) -> Result<Option<String>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    config_backup_core::domain::Site::parse(value)
        .map(|s| Some(s.into()))
        .map_err(|m| invalid(field, m))
}

/// An opaque token for the page after `cursor` (the last row's commit and path).
pub fn page_token(cursor: &HistoryCursor, fingerprint: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("h2.{}.{fingerprint}.{}", cursor.seq, cursor.config_file))
}

fn parse_page_token(token: &str, fingerprint: &str) -> Result<HistoryCursor, ApiError> {
    let bad = || invalid("page_token", "not a token returned as next_page_token by History");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = raw.splitn(4, '.');
    let (Some("h2"), Some(seq), Some(fp), Some(file)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if fp != fingerprint {
        return Err(invalid(
            "page_token",
            "was issued for other filters: repeat the query with the same filters",
        ));
    }
    let seq = seq.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(bad)?;
    Ok(HistoryCursor {
        seq,
        config_file: file.to_owned(),
    })
}

/// The Diff query.
pub fn diff_query(r: &pb::DiffRequest) -> Result<DiffQuery, ApiError> {
    Ok(DiffQuery {
        commit1: commit("commit1", &r.commit1)?,
        commit2: commit("commit2", &r.commit2)?,
        domain: domain("domain", &r.domain)?,
        path: path("path", &r.path)?,
        limits: DiffLimits::default(),
        reveal_secrets: r.reveal_secrets,
    })
}

/// The Rollback request.
pub fn rollback(
    r: &pb::RollbackRequest,
    requested_by: uuid::Uuid,
) -> Result<config_backup_core::rollback::RollbackParams, ApiError> {
    use config_backup_core::rollback::{DomainChoice, RollbackParams};
    let domain = match r.domain.as_str() {
        "" => DomainChoice::OfCommit,
        "all" => DomainChoice::All,
        other => DomainChoice::One(other.parse().map_err(|_| {
            invalid(
                "domain",
                format!(
                    "unknown domain {}: allowed values are {}, all",
                    config_backup_core::domain::quote_input(other),
                    Domain::allowed()
                ),
            )
        })?),
    };
    if r.reason.chars().count() > 1000 || r.reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid("reason", "at most 1000 characters, no control characters"));
    }
    if r.allow_unsigned && r.reason.trim().is_empty() {
        return Err(invalid(
            "reason",
            "required with allow_unsigned: say why a commit whose signature does not verify is applied",
        ));
    }
    Ok(RollbackParams {
        commit: commit("commit", &r.commit)?,
        domain,
        dry_run: r.dry_run,
        remove_extra: r.remove_extra,
        reason: r.reason.clone(),
        requested_by,
        request_id: None,
        allow_unsigned: r.allow_unsigned,
    })
}

/// How many drills ListDrills returns: 1 to 100, 0 for the default (10).
pub fn drill_limit(limit: i32) -> Result<i64, ApiError> {
    match limit {
        0 => Ok(10),
        n @ 1..=100 => Ok(i64::from(n)),
        n => Err(invalid(
            "limit",
            format!("{n} is out of range: allowed 1 to 100 (0 or unset: 10)"),
        )),
    }
}

/// A task id.
pub fn task_id(value: &str) -> Result<uuid::Uuid, ApiError> {
    if value.is_empty() {
        return Err(invalid("task_id", "required: the task_id returned by Rollback"));
    }
    value.parse().map_err(|_| {
        invalid(
            "task_id",
            format!(
                "{} is not a task id (a UUID)",
                config_backup_core::domain::quote_input(value)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_only_with_their_filters() {
        let cursor = HistoryCursor {
            seq: 42,
            config_file: "config/kea/a.b.conf".into(),
        };
        let t = page_token(&cursor, "abc");
        assert_eq!(parse_page_token(&t, "abc").unwrap(), cursor);
        assert!(parse_page_token(&t, "abd").is_err());
        assert!(parse_page_token("garbage", "abc").is_err());
    }

    #[test]
    fn bad_history_fields_are_named() {
        let cases = [
            (
                pb::HistoryRequest {
                    domain: "dhcp".into(),
                    ..Default::default()
                },
                "domain",
            ),
            (
                pb::HistoryRequest {
                    change_type: "renamed".into(),
                    ..Default::default()
                },
                "change_type",
            ),
            (
                pb::HistoryRequest {
                    page_size: 1001,
                    ..Default::default()
                },
                "page_size",
            ),
            (
                pb::HistoryRequest {
                    page_size: -1,
                    ..Default::default()
                },
                "page_size",
            ),
            (
                pb::HistoryRequest {
                    path: "../etc/passwd".into(),
                    ..Default::default()
                },
                "path",
            ),
            (
                pb::HistoryRequest {
                    page_token: "x".into(),
                    ..Default::default()
                },
                "page_token",
            ),
        ];
        for (req, field) in cases {
            let err = history_query(&req).unwrap_err().0;
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().starts_with(&format!("{field}:")), "{}", err.message());
        }
    }
}

/// Generated requests: every field of History, Diff and Rollback, and the task id, with
/// hostile values. Never a panic; a refusal is INVALID_ARGUMENT naming a field of the
/// request, within the echo bound.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use tonic::Code;

    use super::*;

    fn hostile() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,60}",
            "[a-f0-9]{0,45}",
            Just(String::new()),
            Just("dns".to_owned()),
            Just("all".to_owned()),
            Just("--output=/tmp/x".to_owned()),
            Just("../../etc/passwd".to_owned()),
            (1usize..6000).prop_map(|n| "a".repeat(n)),
            proptest::collection::vec(any::<char>(), 0..200).prop_map(|c| c.into_iter().collect()),
        ]
    }

    fn timestamp() -> impl Strategy<Value = Option<pbjson_types::Timestamp>> {
        proptest::option::of(
            (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| pbjson_types::Timestamp { seconds, nanos }),
        )
    }

    fn refused_naming(result: Result<impl Sized, ApiError>, fields: &[&str]) -> Result<(), TestCaseError> {
        if let Err(e) = result {
            let s = tonic::Status::from(e);
            prop_assert_eq!(s.code(), Code::InvalidArgument, "{:?}", s);
            let named = fields.iter().any(|f| s.message().starts_with(&format!("{f}: ")));
            prop_assert!(named, "{}", s.message());
            prop_assert!(
                s.message().len() <= config_backup_core::domain::MAX_MESSAGE_BYTES + 4,
                "{} bytes",
                s.message().len()
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn history_requests(domain in hostile(), path in hostile(), change_type in hostile(), page_size in any::<i32>(), page_token in hostile(), since in timestamp(), until in timestamp(), include_unchanged in any::<bool>(), site in hostile()) {
            let r = pb::HistoryRequest { domain, path, since, until, change_type, include_unchanged, page_size, page_token, site };
            refused_naming(history_query(&r), &["domain", "path", "since", "until", "change_type", "page_size", "page_token", "site"])?;
        }

        #[test]
        fn diff_requests(commit1 in hostile(), commit2 in hostile(), domain in hostile(), path in hostile(), reveal_secrets in any::<bool>()) {
            let r = pb::DiffRequest { commit1, commit2, domain, path, reveal_secrets };
            refused_naming(diff_query(&r), &["commit1", "commit2", "domain", "path"])?;
        }

        #[test]
        fn rollback_requests(commit in hostile(), domain in hostile(), reason in hostile(), dry_run in any::<bool>(), remove_extra in any::<bool>()) {
            let r = pb::RollbackRequest { commit, domain, dry_run, remove_extra, reason, allow_unsigned: false };
            refused_naming(rollback(&r, uuid::Uuid::nil()), &["commit", "domain", "reason"])?;
        }

        #[test]
        fn task_ids(v in hostile()) {
            refused_naming(task_id(&v), &["task_id"])?;
        }
    }
}
