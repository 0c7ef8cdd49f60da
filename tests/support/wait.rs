//! Waiting for a condition, never for a length of time: the one way tests synchronise
//! with servers, child processes and browsers. A condition is polled with a short
//! back-off (2 ms doubling to 100 ms), so a quiet machine goes on at once and a busy one
//! gets until the deadline; a timeout panics saying what was awaited and what was last seen.

use std::future::Future;
use std::time::{Duration, Instant};

/// What a check of a condition found: the awaited value, or not yet (with what was seen).
pub trait Outcome {
    /// What the wait returns.
    type Value;
    /// `Ok` when the condition holds, else what was seen, if the check says.
    fn held(self) -> Result<Self::Value, Option<String>>;
}

impl Outcome for bool {
    type Value = ();
    fn held(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn held(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Outcome for Result<T, String> {
    type Value = T;
    fn held(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

const FIRST_PAUSE: Duration = Duration::from_millis(2);
const LONGEST_PAUSE: Duration = Duration::from_millis(100);

fn timed_out(what: &str, within: Duration, seen: Option<String>) -> ! {
    match seen {
        Some(seen) => panic!("timed out after {within:?} waiting for {what}; last seen: {seen}"),
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Polls `check` until its condition holds, and returns what it found; panics after
/// `within`, naming `what`.
pub async fn wait_for<O, F, Fut>(what: &str, within: Duration, mut check: F) -> O::Value
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    let deadline = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    loop {
        let seen = match check().await.held() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        let now = Instant::now();
        if now >= deadline {
            timed_out(what, within, seen);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// [`wait_for`] for a check that blocks (a thread outside the runtime, `try_wait` of a
/// child process).
pub fn wait_for_blocking<O: Outcome>(what: &str, within: Duration, mut check: impl FnMut() -> O) -> O::Value {
    let deadline = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    loop {
        let seen = match check().held() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        let now = Instant::now();
        if now >= deadline {
            timed_out(what, within, seen);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// A gate a command of the server blocks on (`cat <gate>`: a FIFO read returns at the
/// first writer's close) until the test opens it: a reload that stays "running" exactly
/// as long as the test needs, instead of for a guessed time.
#[derive(Debug)]
pub struct Gate(std::path::PathBuf);

impl Gate {
    /// Makes the FIFO at `path`.
    pub fn new(path: std::path::PathBuf) -> Gate {
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo {}", path.display());
        Gate(path)
    }

    /// The gate `new` made at `path`.
    pub fn existing(path: std::path::PathBuf) -> Gate {
        Gate(path)
    }

    /// The FIFO's path, for the command.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Lets the command waiting on the gate go on: waits (up to a minute, then fails
    /// saying so) until a command has reached the gate, then opens it.
    pub async fn open(&self) {
        wait_for("a command to wait at the gate", Duration::from_secs(60), || {
            std::future::ready(self.release())
        })
        .await
    }

    /// Lets a command that is waiting on the gate go on now, if one is (a write end opened
    /// without blocking exists only while a reader does; closing it ends the read);
    /// whether one was. Never blocks.
    pub fn release(&self) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&self.0)
            .is_ok()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_that_holds_returns_its_value_and_one_that_never_does_names_itself() {
        let mut n = 0;
        let got = wait_for("the third call", Duration::from_secs(5), || {
            n += 1;
            std::future::ready((n >= 3).then_some(n))
        })
        .await;
        assert_eq!(got, 3);
        let panic = tokio::spawn(wait_for("nothing", Duration::from_millis(30), || {
            std::future::ready(Err::<(), _>("still nothing".to_owned()))
        }))
        .await
        .unwrap_err()
        .into_panic();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("waiting for nothing; last seen: still nothing"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_gate_holds_a_command_until_it_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let gate = Gate::new(dir.path().join("gate"));
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cat {} >/dev/null", gate.path().display()))
            .spawn()
            .unwrap();
        gate.open().await;
        let status = wait_for_blocking("cat to end", Duration::from_secs(10), || child.try_wait().unwrap());
        assert!(status.success());
    }
}
