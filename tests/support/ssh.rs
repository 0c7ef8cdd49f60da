//! A real OpenSSH `sshd` on 127.0.0.1 with a random port, its own host key and
//! `authorized_keys`, serving bare repositories by path. Stopped by PID and reaped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Runs a command, panicking with its output on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A key pair made by ssh-keygen.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The private key file (mode 0600).
    pub private: PathBuf,
    /// Its public key line.
    pub public: String,
}

/// Makes a key pair: `kind` is ed25519, rsa or ecdsa; `pem` writes the private key in
/// PEM instead of OpenSSH format.
pub fn keygen(dir: &Path, name: &str, kind: &str, pem: bool, passphrase: &str) -> KeyPair {
    let private = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
        .arg(&private);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    if pem {
        cmd.args(["-m", "PEM"]);
    }
    run(&mut cmd);
    let public = std::fs::read_to_string(private.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned();
    KeyPair { private, public }
}

/// The `SHA256:...` fingerprint ssh-keygen prints for a public key file.
pub fn fingerprint(public_file: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(public_file));
    out.split_whitespace().nth(1).unwrap().to_owned()
}

/// A running sshd.
#[derive(Debug)]
pub struct SshServer {
    /// Its directory (config, host key, authorized_keys).
    pub dir: PathBuf,
    /// The port it listens on (kept across restarts).
    pub port: u16,
    /// The host key's public file.
    pub host_public: PathBuf,
    child: Option<Child>,
}

/// The login the tests use (the current user).
pub fn user() -> String {
    run(Command::new("id").arg("-un")).trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SshServer {
    /// Starts sshd in `dir` allowing `authorized` public keys.
    pub fn start(dir: &Path, authorized: &[&KeyPair]) -> SshServer {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is missing: the test command installs openssh-server (apt-get install openssh-server)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        let host_key = dir.join("host_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key));
        let mut server = SshServer {
            dir: dir.to_owned(),
            port: free_port(),
            host_public: host_key.with_extension("pub"),
            child: None,
        };
        server.authorize(authorized);
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {dir}/authorized_keys\n\
                 PidFile {dir}/sshd.pid\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\nLogLevel VERBOSE\n\
                 AllowUsers {user}\nMaxStartups 100\n",
                port = server.port,
                hk = host_key.display(),
                dir = dir.display(),
                user = user(),
            ),
        )
        .unwrap();
        server.up();
        server
    }

    /// Replaces authorized_keys.
    pub fn authorize(&self, keys: &[&KeyPair]) {
        let text: String = keys.iter().map(|k| format!("{}\n", k.public)).collect();
        std::fs::write(self.dir.join("authorized_keys"), text).unwrap();
    }

    /// (Re)starts sshd on the same port and waits until it answers.
    pub fn up(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        let (port, log) = (self.port, self.dir.join("sshd.log"));
        let child = self.child.as_mut().unwrap();
        crate::wait_for_blocking(
            &format!("sshd's banner on port {port}"),
            Duration::from_secs(20),
            || {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    use std::io::Read;
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut banner = [0u8; 4];
                    if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                        return true;
                    }
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("sshd exited ({status}): {log}");
                }
                false
            },
        )
    }

    /// Stops sshd (by PID) and reaps it.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A known_hosts line for this server, hashed as `ssh-keyscan -H` writes it.
    pub fn known_hosts_hashed(&self) -> String {
        let out =
            run(Command::new("ssh-keyscan").args(["-H", "-t", "ed25519", "-p", &self.port.to_string(), "127.0.0.1"]));
        assert!(out.contains("|1|"), "{out}");
        out
    }

    /// A plain known_hosts line for this server.
    pub fn known_hosts_plain(&self) -> String {
        let key = std::fs::read_to_string(&self.host_public).unwrap();
        let mut fields = key.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        )
    }

    /// The ssh:// URL of a repository path on this server.
    pub fn url(&self, repo: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", user(), self.port, repo.display())
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.down();
    }
}
