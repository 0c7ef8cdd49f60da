//! A real SMTP server (Python aiosmtpd, as the test command installs it) on a random
//! port, saving messages into a Maildir, or refusing them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running SMTP server.
#[derive(Debug)]
pub struct SmtpServer {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl SmtpServer {
    /// Starts one that saves messages (`refuse` = false) or refuses every recipient.
    pub fn start(dir: &Path, refuse: bool) -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/smtpd.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(if refuse { "refuse" } else { "save" })
            .arg(port.to_string())
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the test SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "READY",
            "the test SMTP server did not start: the test command installs aiosmtpd (pip install aiosmtpd)"
        );
        SmtpServer {
            port,
            dir: dir.to_owned(),
            child,
        }
    }

    /// The environment that points the service at this server.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("SMTP_HOST", "127.0.0.1".to_owned()),
            ("SMTP_PORT", self.port.to_string()),
            ("SMTP_SECURITY", "none".to_owned()),
            ("SMTP_FROM", "Config Backup <config-backup@rgz.local>".to_owned()),
            (
                "CONFIG_BACKUP_NOTIFY_RECIPIENTS",
                "noc@rgz.local, oncall@rgz.local".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Raw messages received so far, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Waits until at least `n` messages arrived, and returns them.
    pub fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        crate::wait_for_blocking(&format!("{n} mails"), Duration::from_secs(30), || {
            let m = self.messages();
            if m.len() >= n {
                Ok(m)
            } else {
                Err(format!("{} mails", m.len()))
            }
        })
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
