//! A domain commit's message: the product's first line, a body line per changed file
//! (its hashes, its change in the service's terms, its change of mode or owner), and the
//! trailers that tie the commit to its domain, run, requester and sealing key.

use super::*;

/// A changed file's metadata change in words (" (mode 0600 → 0644, owner freerad → root)"),
/// or nothing.
fn meta_words(r: &FileRecord) -> String {
    let words = r.metadata_changes();
    if words.is_empty() {
        String::new()
    } else {
        format!(" ({})", words.join(", "))
    }
}

/// A changed file's change in its service's terms, for a body line (" — +2 rules in inet
/// filter input"), or nothing.
fn summary_words(r: &FileRecord) -> String {
    if told(r) {
        format!(" — {}", r.summary.summary)
    } else {
        String::new()
    }
}

/// Whether a commit message tells the file's summary: not for a whole file added or
/// removed (its letter says so already).
fn told(r: &FileRecord) -> bool {
    !r.summary.summary.is_empty() && r.summary.changes.first().is_none_or(|c| c.kind != "file")
}

fn short(entry: Option<&ManifestEntry>) -> &str {
    entry.map(|e| &e.sha256[..7.min(e.sha256.len())]).unwrap_or("0000000")
}

/// What a commit's trailers say besides its domain.
#[derive(Debug, Clone, Copy)]
pub struct Trailers<'a> {
    /// The run that made it.
    pub run_id: Uuid,
    /// Who asked.
    pub actor: &'a Actor,
    /// The id of the secrets key that sealed it.
    pub sealed_with: &'a str,
    /// The audit chain's head when the run started.
    pub audit_chain: Option<&'a str>,
}

/// The commit message: the product's first line, a body line per file when several
/// changed, and trailers that tie the commit to its domain, run, requester, sealing key
/// and the audit chain.
pub fn commit_message(
    date: &str,
    domain: Domain,
    records: &[FileRecord],
    title: &CommitTitle,
    trailers: &Trailers<'_>,
) -> String {
    let Trailers {
        run_id,
        actor,
        sealed_with,
        audit_chain,
    } = *trailers;
    let changed: Vec<&FileRecord> = records.iter().filter(|r| r.kind != ChangeKind::Unchanged).collect();
    let body = |m: &mut String| {
        for r in &changed {
            m.push_str(&format!(
                "{} {} {}→{}{}\n",
                r.kind.letter(),
                r.path,
                short(r.old.as_ref()),
                short(r.new.as_ref()),
                summary_words(r)
            ));
        }
    };
    let mut msg = match (title, changed.as_slice()) {
        (CommitTitle::Rollback { target, task }, changed) => {
            let mut m = format!(
                "config rollback {date} {domain} to {} (task {task})\n",
                &target[..7.min(target.len())]
            );
            if !changed.is_empty() {
                m.push('\n');
                body(&mut m);
            }
            m
        }
        (CommitTitle::Backup, _) => match changed.as_slice() {
            [] => format!("config backup {date} — no changes ({domain} domain stable)\n"),
            [one] => {
                let mut m = format!(
                    "config backup {date} {} {}→{}{}\n",
                    one.path,
                    short(one.old.as_ref()),
                    short(one.new.as_ref()),
                    meta_words(one)
                );
                if told(one) {
                    m.push('\n');
                    body(&mut m);
                }
                m
            }
            many => {
                let mut m = format!("config backup {date} {domain}: {} files changed\n\n", many.len());
                body(&mut m);
                m
            }
        },
    };
    msg.push_str(&format!(
        "\n{}: {domain}\n{}: {run_id}\n{}: {}\n{}: v1 {sealed_with}\n",
        repo::TRAILER_DOMAIN,
        repo::TRAILER_RUN,
        repo::TRAILER_BY,
        actor.as_audit(),
        crate::secrets::TRAILER_SEALED,
    ));
    if let Some(head) = audit_chain {
        msg.push_str(&format!("{}: {head}\n", crate::store::TRAILER_AUDIT_CHAIN));
    }
    msg
}
