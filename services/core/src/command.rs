//! Running an operator's command (validate, reload, verify): from the operator's
//! configuration only, through `sh -c`, in its own process group, with a timeout that
//! kills the whole group, a clean environment, and bounded output.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// At most this much output is kept.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// Exit status 0 within the timeout.
    pub ok: bool,
    /// The exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// stdout and stderr, interleaved, bounded.
    pub output: String,
}

impl CommandOutcome {
    /// One line for a stage message.
    pub fn summary(&self, what: &str, timeout: Duration) -> String {
        match (self.ok, self.timed_out, self.exit_code) {
            (true, ..) => format!("{what} passed"),
            (_, true, _) => format!("{what} timed out after {} s and was killed", timeout.as_secs()),
            (_, _, Some(code)) => format!("{what} failed (exit {code})"),
            _ => format!("{what} failed (killed by a signal)"),
        }
    }
}

/// Quotes a value for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `command` with `sh -c` in `cwd`. `vars` are added to a minimal environment
/// (PATH, HOME, LANG): the server's own secrets are not passed on.
pub async fn run(command: &str, cwd: &Path, vars: &[(&str, String)], timeout: Duration) -> CommandOutcome {
    let failed = |output: String| CommandOutcome {
        ok: false,
        exit_code: None,
        timed_out: false,
        output,
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return failed(format!("cannot create a pipe: {e}")),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return failed(format!("cannot create a pipe: {e}")),
    };
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH")
                .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0)
        .kill_on_drop(true);
    if let Some(home) = std::env::var_os("HOME") {
        cmd.env("HOME", home);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let spawned = cmd.spawn();
    drop(cmd); // closes our copies of the pipe's write end
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start /bin/sh: {e}")),
    };
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = collected.clone();
    let reading = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut out = sink.lock().unwrap_or_else(|p| p.into_inner());
                    let room = (MAX_OUTPUT + 1).saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    });
    let pgid = child.id();
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => (s.ok(), false),
        Err(_) => {
            if let Some(pgid) = pgid {
                // The whole group: the shell and whatever it started.
                if let Some(group) = i32::try_from(pgid).ok().and_then(rustix::process::Pid::from_raw) {
                    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
            }
            (child.wait().await.ok(), true)
        }
    };
    // A background grandchild may hold the pipe open: do not wait for it for long.
    let _ = tokio::time::timeout(Duration::from_secs(1), reading).await;
    let bytes = collected.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut output = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]).into_owned();
    if bytes.len() > MAX_OUTPUT {
        output.push_str("\n[output truncated]");
    }
    let exit_code = status.and_then(|s| s.code());
    CommandOutcome {
        ok: !timed_out && exit_code == Some(0),
        exit_code,
        timed_out,
        output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_and_exit_codes_are_kept() {
        let dir = std::env::temp_dir();
        let ok = run("echo out; echo err >&2", &dir, &[], Duration::from_secs(5)).await;
        assert!(ok.ok);
        assert!(ok.output.contains("out") && ok.output.contains("err"));
        let bad = run("exit 3", &dir, &[], Duration::from_secs(5)).await;
        assert_eq!((bad.ok, bad.exit_code), (false, Some(3)));
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_with_its_children() {
        let dir = std::env::temp_dir();
        let start = std::time::Instant::now();
        let r = run("sleep 30 & sleep 30", &dir, &[], Duration::from_millis(300)).await;
        assert!(r.timed_out && !r.ok);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn the_environment_is_clean_and_vars_are_passed() {
        let dir = std::env::temp_dir();
        let r = run(
            "echo \"[$AUTH_JWT_SECRET][$CONFIG_ROLLBACK_DOMAIN]\"",
            &dir,
            &[("CONFIG_ROLLBACK_DOMAIN", "dns".into())],
            Duration::from_secs(5),
        )
        .await;
        assert!(r.output.contains("[][dns]"), "{}", r.output);
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let dir = std::env::temp_dir();
        let r = run(
            "head -c 200000 /dev/zero | tr '\\0' x",
            &dir,
            &[],
            Duration::from_secs(5),
        )
        .await;
        assert!(r.output.len() < MAX_OUTPUT + 100);
        assert!(r.output.ends_with("[output truncated]"));
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
