//! Mail to the NOC: a summary after each backup (or only when something changed), an
//! ALERT when a backup fails or the push failed twice in a row, a report after each
//! rollback, and the scheduler's alert when the server cannot be reached. A mail that
//! cannot be sent never fails anything: it is logged and recorded for Status.
//!
//! Config files hold secrets (RADIUS shared secrets): mails carry names, hashes and line
//! counts, never patch lines, unless `CONFIG_BACKUP_NOTIFY_INCLUDE_DIFF=true`.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use config_backup_core::domain::ChangeKind;
use config_backup_core::domain::quote_input;
use config_backup_core::engine::{BackupReport, Engine, Observer};
use config_backup_core::settings::{Env, SettingsError};
use config_backup_core::store::{DrillRecord, MailRecord, PushOutcome, RollbackStage, RollbackTask, RunOutcome};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How to talk to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP (a relay on the host or the compose network).
    None,
    /// STARTTLS after connecting.
    StartTls,
    /// TLS from the start (port 465).
    Tls,
}

/// Mail settings, from `SMTP_*` and `CONFIG_BACKUP_NOTIFY_*`.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `SMTP_HOST`.
    pub host: String,
    /// `SMTP_PORT` (25, 587 with starttls, 465 with tls).
    pub port: u16,
    /// `SMTP_USERNAME`.
    pub username: Option<String>,
    /// `SMTP_PASSWORD_FILE`.
    pub password_file: Option<PathBuf>,
    /// `SMTP_SECURITY`: none, starttls or tls.
    pub security: Security,
    /// `SMTP_FROM`.
    pub from: Mailbox,
    /// `CONFIG_BACKUP_NOTIFY_RECIPIENTS`.
    pub recipients: Vec<Mailbox>,
    /// `CONFIG_BACKUP_NOTIFY_ON_CHANGES`: summaries only when something changed.
    pub only_on_changes: bool,
    /// `CONFIG_BACKUP_NOTIFY_INCLUDE_DIFF`: patch lines in the mail.
    pub include_diff: bool,
}

impl MailSettings {
    /// None when `SMTP_HOST` is not set (no mail).
    pub fn from_env(env: &Env) -> Result<Option<MailSettings>, SettingsError> {
        let Some(host) = env.parsed("SMTP_HOST", |h| {
            let ok = h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if ok {
                Ok(h.to_owned())
            } else {
                Err("is not a host name or IP address".to_owned())
            }
        })?
        else {
            return Ok(None);
        };
        let security = match env.choice("SMTP_SECURITY", "starttls", &["none", "starttls", "tls"])? {
            "none" => Security::None,
            "tls" => Security::Tls,
            _ => Security::StartTls,
        };
        let default_port = match security {
            Security::None => 25,
            Security::StartTls => 587,
            Security::Tls => 465,
        };
        let mailbox = |m: &str| m.parse::<Mailbox>().map_err(|e| format!("is not a mail address ({e})"));
        let from = env
            .parsed("SMTP_FROM", mailbox)?
            .unwrap_or_else(|| "config-backup@localhost".parse().expect("the default sender parses"));
        const RECIPIENTS: &str = "CONFIG_BACKUP_NOTIFY_RECIPIENTS";
        let recipients: Vec<Mailbox> = env
            .list(RECIPIENTS)
            .iter()
            .map(|r| mailbox(r).map_err(|m| env.invalid(RECIPIENTS, format!("{}: {m}", quote_input(r)))))
            .collect::<Result<_, _>>()?;
        if recipients.is_empty() {
            return Err(env.invalid(RECIPIENTS, "is required when SMTP_HOST is set"));
        }
        Ok(Some(MailSettings {
            host,
            port: env.number("SMTP_PORT", default_port, 1..=65535)?,
            username: env.text("SMTP_USERNAME")?,
            password_file: env.path("SMTP_PASSWORD_FILE")?,
            security,
            from,
            recipients,
            only_on_changes: env.flag("CONFIG_BACKUP_NOTIFY_ON_CHANGES", false)?,
            include_diff: env.flag("CONFIG_BACKUP_NOTIFY_INCLUDE_DIFF", false)?,
        }))
    }
}

/// A mail: subject, plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// What kind: backup, alert, rollback.
    pub kind: &'static str,
    /// Subject.
    pub subject: String,
    /// Plain text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// Sends mail.
#[derive(Debug, Clone)]
pub struct Mailer {
    settings: MailSettings,
}

impl Mailer {
    /// A mailer.
    pub fn new(settings: MailSettings) -> Mailer {
        Mailer { settings }
    }

    /// The settings.
    pub fn settings(&self) -> &MailSettings {
        &self.settings
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let s = &self.settings;
        let tls = || TlsParameters::new(s.host.clone()).map_err(|e| format!("TLS for {}: {e}", s.host));
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host).port(s.port);
        b = match s.security {
            Security::None => b.tls(Tls::None),
            Security::StartTls => b.tls(Tls::Required(tls()?)),
            Security::Tls => b.tls(Tls::Wrapper(tls()?)),
        };
        if let Some(user) = &s.username {
            let password = match &s.password_file {
                Some(p) => std::fs::read_to_string(p)
                    .map_err(|e| format!("SMTP_PASSWORD_FILE {}: {e}", p.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
                None => String::new(),
            };
            b = b.credentials(Credentials::new(user.clone(), password));
        }
        Ok(b.timeout(Some(Duration::from_secs(30))).build())
    }

    /// Sends a mail to the recipients.
    pub async fn send(&self, mail: &Mail) -> Result<(), String> {
        let mut builder = Message::builder()
            .from(self.settings.from.clone())
            .subject(mail.subject.clone());
        for r in &self.settings.recipients {
            builder = builder.to(r.clone());
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
            .map_err(|e| format!("building the mail: {e}"))?;
        let transport = self.transport()?;
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP {}:{}: {e}", self.settings.host, self.settings.port))
    }

    /// Sends, logs the outcome and records it for Status; never fails.
    pub async fn deliver(&self, engine: Option<&Engine>, mail: &Mail) {
        let result = self.send(mail).await;
        match &result {
            Ok(()) => tracing::info!(kind = mail.kind, subject = %mail.subject, "mail sent"),
            Err(e) => tracing::error!(kind = mail.kind, subject = %mail.subject, error = %e, "mail could not be sent"),
        }
        if let Some(engine) = engine {
            let record = MailRecord {
                sent_at: Utc::now(),
                kind: mail.kind.to_owned(),
                subject: mail.subject.clone(),
                ok: result.is_ok(),
                error: result.err(),
            };
            if let Err(e) = engine.store().record_mail(&record).await {
                tracing::warn!(error = %e, "could not record the mail's outcome");
            }
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn short(h: &str) -> &str {
    &h[..7.min(h.len())]
}

/// Per changed file of a run: (domain, path, change, old7, new7, +lines, -lines, patch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// Domain.
    pub domain: String,
    /// Path.
    pub path: String,
    /// added, modified, deleted.
    pub change: String,
    /// Old SHA-256, 7 digits.
    pub old: String,
    /// New SHA-256, 7 digits.
    pub new: String,
    /// Lines added.
    pub additions: usize,
    /// Lines deleted.
    pub deletions: usize,
    /// The patch (only used with include_diff).
    pub patch: String,
    /// The change of type, mode, owner or group in words ("mode 0600 → 0644").
    pub metadata: Vec<String>,
    /// The change in the service's own terms ("+2 rules in inet filter input").
    pub summary: String,
}

/// The summary or alert for a backup run. None when no mail is due (a no-change run with
/// `only_on_changes`).
pub fn backup_mail(
    report: &BackupReport,
    files: &[ChangedFile],
    push_failed_before: bool,
    s: &MailSettings,
) -> Option<Mail> {
    let run = &report.run;
    let changed = files.len();
    let commits = run.commits;
    let domain_failed = report.domains.iter().any(|d| d.error.is_some());
    let push_failed = matches!(report.push.outcome, PushOutcome::Failed | PushOutcome::Diverged);
    let alert = run.outcome == RunOutcome::Failed || domain_failed || (push_failed && push_failed_before);
    if !alert && s.only_on_changes && changed == 0 {
        return None;
    }
    let security: usize = report.domains.iter().map(|d| d.security_warnings.len()).sum();
    let subject = if alert {
        "ALERT: Config Backup FAILED".to_owned()
    } else if security > 0 {
        format!("SECURITY: Config backup — {security} file(s) holding secrets opened up, {changed} files changed")
    } else {
        format!("Config backup — {changed} files changed, {commits} commits")
    };
    let mut text = String::new();
    let mut html = String::from("<html><body>");
    if alert {
        let what = run
            .error
            .clone()
            .unwrap_or_else(|| "the push failed on two runs in a row".to_owned());
        text.push_str(&format!(
            "The config backup run {} FAILED.\n\nError: {what}\n\n",
            run.id
        ));
        html.push_str(&format!(
            "<h2>Config backup FAILED</h2><p><b>Error:</b> {}</p>",
            esc(&what)
        ));
        let done = format!(
            "Still done: {commits} commit(s) made and kept in the working copy; {} commit(s) waiting to be pushed.",
            report.push.unpushed
        );
        text.push_str(&format!("{done}\n\n"));
        html.push_str(&format!("<p>{}</p>", esc(&done)));
    } else {
        text.push_str(&format!(
            "Config backup run {} ({}): {changed} files changed, {commits} commits.\n\n",
            run.id,
            run.trigger.as_str()
        ));
        html.push_str(&format!(
            "<h2>Config backup: {changed} files changed, {commits} commits</h2>"
        ));
    }
    for d in &report.domains {
        let name = d.domain.map(|x| x.as_str()).unwrap_or("?");
        let commit = d
            .commit
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".to_owned());
        text.push_str(&format!("[{name}] commit {commit}\n"));
        html.push_str(&format!(
            "<h3>{}</h3><p>commit <code>{}</code></p>",
            esc(name),
            esc(&commit)
        ));
        if let Some(e) = &d.error {
            text.push_str(&format!("  FAILED: {e}\n"));
            html.push_str(&format!("<p><b>FAILED:</b> {}</p>", esc(e)));
        }
        let mine: Vec<&ChangedFile> = files.iter().filter(|f| f.domain == name).collect();
        if mine.is_empty() && d.error.is_none() {
            text.push_str("  no changes\n");
            html.push_str("<p>no changes</p>");
        } else if !mine.is_empty() {
            html.push_str("<table><tr><th>change</th><th>file</th><th>old→new</th><th>+</th><th>-</th></tr>");
            for f in mine {
                let meta = if f.metadata.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", f.metadata.join(", "))
                };
                text.push_str(&format!(
                    "  {} {} {}→{} +{} -{}{meta}\n",
                    f.change, f.path, f.old, f.new, f.additions, f.deletions
                ));
                // The specification's layout: what the file was, is, and what changed in
                // the service's terms.
                text.push_str(&format!("      Previous: {}  Current: {}\n", f.old, f.new));
                if !f.summary.is_empty() {
                    text.push_str(&format!("      {}: {}\n", capitalized(&f.change), f.summary));
                }
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}{}</td><td><code>{}→{}</code></td><td>+{}</td><td>-{}</td></tr>",
                    esc(&f.change),
                    esc(&f.path),
                    esc(&meta),
                    esc(&f.old),
                    esc(&f.new),
                    f.additions,
                    f.deletions
                ));
                if !f.summary.is_empty() {
                    html.push_str(&format!(
                        "<tr><td></td><td colspan=4>{}: {}</td></tr>",
                        esc(&capitalized(&f.change)),
                        esc(&f.summary)
                    ));
                }
                if s.include_diff && !f.patch.is_empty() {
                    text.push_str(&f.patch);
                    html.push_str(&format!("<tr><td colspan=5><pre>{}</pre></td></tr>", esc(&f.patch)));
                }
            }
            html.push_str("</table>");
        }
        for w in &d.security_warnings {
            text.push_str(&format!("  {w}\n"));
            html.push_str(&format!("<p><b>{}</b></p>", esc(w)));
        }
        if d.error.is_none() && d.unchanged > 0 {
            text.push_str(&format!("  Unchanged: {} files\n", d.unchanged));
        }
        if !d.unmatched.is_empty() {
            text.push_str(&format!(
                "  patterns that matched nothing: {}\n",
                d.unmatched.join(", ")
            ));
        }
    }
    let push = match report.push.outcome {
        PushOutcome::Pushed => format!("pushed ({} unpushed)", report.push.unpushed),
        PushOutcome::NotAttempted => "not attempted".to_owned(),
        PushOutcome::Failed => format!(
            "FAILED: {} ({} commits pending)",
            report.push.error.clone().unwrap_or_default(),
            report.push.unpushed
        ),
        PushOutcome::Diverged => format!("DIVERGED: {}", report.push.error.clone().unwrap_or_default()),
    };
    text.push_str(&format!("\nPush: {push}\n"));
    html.push_str(&format!("<p><b>Push:</b> {}</p></body></html>", esc(&push)));
    Some(Mail {
        kind: if alert { "alert" } else { "backup" },
        subject,
        text,
        html,
    })
}

/// "modified" → "Modified".
fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The report of a rollback.
pub fn rollback_mail(t: &RollbackTask) -> Mail {
    let ok = t.state == RollbackStage::Success;
    let domains: Vec<&str> = t.domains.iter().map(|d| d.as_str()).collect();
    let domains = domains.join(", ");
    let subject = if ok {
        format!("Config rollback — {domains} to {}: SUCCESS", short(&t.target_hash))
    } else {
        format!("ALERT: Config rollback FAILED — {domains} to {}", short(&t.target_hash))
    };
    let duration = t.duration_seconds.unwrap_or(0.0);
    let mut text = format!(
        "Rollback task {}\nDomains: {domains}\nTarget: {}\nRequested by: {}\nReason: {}\nState: {}\nDuration: {duration:.2} s\n",
        t.id,
        t.target_hash,
        t.requested_by,
        if t.reason.is_empty() { "(none given)" } else { &t.reason },
        t.state.as_str(),
    );
    if let Some(e) = &t.error {
        text.push_str(&format!(
            "Error: {e}\nPrevious files put back: {}\n",
            if t.revert_succeeded { "yes" } else { "NO" }
        ));
    }
    text.push_str("\nStages:\n");
    let mut rows = String::new();
    for st in &t.stages {
        text.push_str(&format!(
            "  {} {} {}\n",
            st.stage.as_str(),
            if st.ok { "ok" } else { "FAILED" },
            st.message
        ));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            st.stage.as_str(),
            if st.ok { "ok" } else { "FAILED" },
            esc(&st.message)
        ));
    }
    let html = format!(
        "<html><body><h2>{}</h2><p>Task {}<br>Domains: {}<br>Target: <code>{}</code><br>Requested by: {}<br>Reason: {}<br>Duration: {duration:.2} s</p>{}<table>{rows}</table></body></html>",
        esc(&subject),
        t.id,
        esc(&domains),
        esc(&t.target_hash),
        t.requested_by,
        esc(&t.reason),
        t.error
            .as_ref()
            .map(|e| format!("<p><b>Error:</b> {}</p>", esc(e)))
            .unwrap_or_default(),
    );
    Mail {
        kind: "rollback",
        subject,
        text,
        html,
    }
}

/// The alert of a restore drill that failed: each failed domain with its causes (commit,
/// file and what did not hold). A proven drill sends no mail: Status, ListSites, the
/// console and `/metrics` show it.
pub fn drill_alert(site: &str, d: &DrillRecord) -> Mail {
    let failed: Vec<&str> = d
        .domains
        .iter()
        .filter(|x| !x.proven())
        .map(|x| x.domain.as_str())
        .collect();
    let subject = format!("ALERT: Config restore drill FAILED — {}", failed.join(", "));
    let mut text = format!(
        "Restore drill {} of site {site}\nRemote head: {}\nRequested by: {}\nStarted: {}\n\n\
         The backup remote could not be proven restorable. A restore from it now would not put back \
         what was backed up, for these domains:\n",
        d.id,
        d.remote_head.as_deref().unwrap_or("(not cloned)"),
        d.requested_by,
        d.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    let mut rows = String::new();
    if let Some(e) = &d.error {
        text.push_str(&format!("\nError: {e}\n"));
    }
    for x in &d.domains {
        let state = if x.proven() { "PROVEN" } else { "FAILED" };
        text.push_str(&format!("\n{} {state}\n", x.domain));
        for c in &x.causes {
            text.push_str(&format!("  - {c}\n"));
            rows.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", x.domain.as_str(), esc(c)));
        }
    }
    text.push_str("\nSee docs/operations.md, \"Restore drills\", for what each cause means and what to do.\n");
    let html = format!(
        "<html><body><h2>{}</h2><p>Drill {}<br>Remote head: <code>{}</code></p><table>{rows}</table></body></html>",
        esc(&subject),
        d.id,
        esc(d.remote_head.as_deref().unwrap_or("(not cloned)")),
    );
    Mail {
        kind: "alert",
        subject,
        text,
        html,
    }
}

/// What the scheduler could not get the server to do, for its alert.
struct Missed {
    /// The subject.
    subject: &'static str,
    /// The HTML heading.
    heading: &'static str,
    /// "The scheduled ... did not run".
    what: &'static str,
    /// What the server did ("could not be reached").
    server_did: &'static str,
    /// What was not done, and the command to run by hand.
    consequence: &'static str,
}

fn scheduler_mail(m: &Missed, server: &str, attempts: u32, error: &str) -> Mail {
    let text = format!(
        "{}: the server {server} {} after {attempts} attempts.\n\nLast error: {error}\n\n{}\n",
        m.what, m.server_did, m.consequence
    );
    let html = format!(
        "<html><body><h2>{}</h2><p>The server {} {} after {attempts} attempts.</p><p><b>Last error:</b> {}</p></body></html>",
        m.heading,
        esc(server),
        m.server_did,
        esc(error)
    );
    Mail {
        kind: "alert",
        subject: m.subject.to_owned(),
        text,
        html,
    }
}

/// The scheduler's alert when the server could not be reached.
pub fn scheduler_alert(server: &str, attempts: u32, error: &str) -> Mail {
    let missed = Missed {
        subject: "ALERT: Config Backup FAILED",
        heading: "Config backup FAILED",
        what: "The scheduled config backup did not run",
        server_did: "could not be reached",
        consequence: "Nothing was backed up; check the server and run `config-backup-scheduler --once`.",
    };
    scheduler_mail(&missed, server, attempts, error)
}

/// The scheduler's alert when a restore drill could not be run at all.
pub fn scheduler_drill_alert(server: &str, attempts: u32, error: &str) -> Mail {
    let missed = Missed {
        subject: "ALERT: Config restore drill did not run",
        heading: "Config restore drill did not run",
        what: "The scheduled restore drill did not run",
        server_did: "did not run it",
        consequence: "Nothing was proven restorable; check the server and run `config-backup-scheduler --drill-once`.",
    };
    scheduler_mail(&missed, server, attempts, error)
}

/// Mails the NOC when backups and rollbacks end.
#[derive(Debug, Clone)]
pub struct MailObserver {
    mailer: Mailer,
}

impl MailObserver {
    /// An observer sending through `mailer`.
    pub fn new(mailer: Mailer) -> MailObserver {
        MailObserver { mailer }
    }
}

#[async_trait::async_trait]
impl Observer for MailObserver {
    async fn backup_finished(&self, engine: &Engine, report: &BackupReport) {
        let mut files = Vec::new();
        for d in &report.domains {
            let (Some(domain), Some(commit)) = (d.domain, &d.commit) else {
                continue;
            };
            if d.changes.is_empty() {
                continue;
            }
            let lines = engine.commit_changes(commit.as_str()).await.ok();
            for c in &d.changes {
                let stat = lines
                    .as_ref()
                    .and_then(|l| l.files.iter().find(|f| f.path == c.path.as_str()));
                files.push(ChangedFile {
                    domain: domain.as_str().to_owned(),
                    path: c.path.to_string(),
                    change: c.kind.as_str().to_owned(),
                    old: c
                        .old
                        .as_ref()
                        .map(|e| short(&e.sha256).to_owned())
                        .unwrap_or_else(|| "0000000".to_owned()),
                    new: c
                        .new
                        .as_ref()
                        .map(|e| short(&e.sha256).to_owned())
                        .unwrap_or_else(|| "0000000".to_owned()),
                    additions: stat.map(|f| f.additions).unwrap_or(0),
                    deletions: stat.map(|f| f.deletions).unwrap_or(0),
                    patch: stat.map(|f| f.patch.clone()).unwrap_or_default(),
                    metadata: c.metadata_changes(),
                    summary: c.summary.summary.clone(),
                });
                debug_assert!(c.kind != ChangeKind::Unchanged);
            }
        }
        let push_failed_before = match engine.store().recent_runs(2).await {
            Ok(runs) => runs
                .iter()
                .filter(|r| r.id != report.run.id)
                .take(1)
                .any(|r| matches!(r.push_outcome, Some(PushOutcome::Failed | PushOutcome::Diverged))),
            Err(_) => false,
        };
        if let Some(mail) = backup_mail(report, &files, push_failed_before, self.mailer.settings()) {
            self.mailer.deliver(Some(engine), &mail).await;
        }
    }

    async fn rollback_finished(&self, engine: &Engine, task: &RollbackTask) {
        self.mailer.deliver(Some(engine), &rollback_mail(task)).await;
    }

    async fn drill_finished(&self, engine: &Engine, drill: &DrillRecord) {
        if !drill.proven() {
            self.mailer
                .deliver(Some(engine), &drill_alert(engine.site(), drill))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_on_changes(value: &str) -> Result<Option<MailSettings>, SettingsError> {
        let env: Env = [
            ("SMTP_HOST", "127.0.0.1"),
            ("CONFIG_BACKUP_NOTIFY_RECIPIENTS", "noc@example.org"),
            ("CONFIG_BACKUP_NOTIFY_ON_CHANGES", value),
        ]
        .into_iter()
        .collect();
        MailSettings::from_env(&env)
    }

    #[test]
    fn mail_flags_are_read_by_the_one_boolean_parser() {
        for (value, want) in [
            ("True", true),
            ("on", true),
            ("YES", true),
            ("1", true),
            ("Off", false),
            ("false", false),
        ] {
            let mail = with_on_changes(value).unwrap().unwrap();
            assert_eq!(mail.only_on_changes, want, "{value}");
        }
        let e = with_on_changes("maybe").unwrap_err();
        assert_eq!(e.var, "CONFIG_BACKUP_NOTIFY_ON_CHANGES");
        let m = e.to_string();
        assert!(m.contains("\"maybe\"") && m.contains("allowed: true or false"), "{m}");
    }
}
