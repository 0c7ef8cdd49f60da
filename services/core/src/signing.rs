//! Signed history: every commit the service makes is signed with an SSH key
//! (`CONFIG_BACKUP_SIGNING_KEY`, ed25519), in the SSH signature format (`SSHSIG`,
//! namespace `git`, SHA-512) that stock git verifies with `gpg.format=ssh` and an
//! allowed-signers file.
//!
//! Invariants:
//! - with a key configured, no commit is written unsigned: a key that cannot be read
//!   stops the server at start and fails the run, never falls back to unsigned;
//! - the key file is mode 0600 or stricter, like the push key, and never leaves the
//!   process: only its public half is printed (`allowed-signers`, Status).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, SshSig};

/// The namespace git signs commits in.
const NAMESPACE: &str = "git";

/// A loaded signing key.
#[derive(Clone)]
pub struct Signer {
    key: PrivateKey,
    path: PathBuf,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("path", &self.path)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Signer {
    /// Reads an unencrypted ed25519 OpenSSH private key, mode 0600 or stricter. The error
    /// says what is wrong (never the key's bytes).
    pub fn load(path: &Path) -> Result<Signer, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{} is mode {:04o}: a signing key must be readable by the service's user only (chmod 0600)",
                path.display(),
                meta.permissions().mode() & 0o7777
            ));
        }
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        );
        let key = PrivateKey::from_openssh(text.as_bytes())
            .map_err(|e| format!("{} is not an OpenSSH private key: {e}", path.display()))?;
        if key.is_encrypted() {
            return Err(format!(
                "{} is encrypted: use a key without a passphrase, readable by the service's user only",
                path.display()
            ));
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(format!(
                "{} is a {} key: use an ed25519 key (ssh-keygen -t ed25519)",
                path.display(),
                key.algorithm()
            ));
        }
        Ok(Signer {
            key,
            path: path.to_path_buf(),
        })
    }

    /// The armored SSH signature of `data` (a commit's content), for its `gpgsig` header.
    pub fn sign(&self, data: &[u8]) -> Result<String, String> {
        self.key
            .sign(NAMESPACE, HashAlg::Sha512, data)
            .and_then(|sig| sig.to_pem(LineEnding::LF))
            .map_err(|e| format!("signing with {} failed: {e}", self.path.display()))
    }

    /// Whether `armored` (a commit's `gpgsig` header) is this key's signature of `data` in
    /// the `git` namespace; the error says what does not hold.
    pub fn verify(&self, data: &[u8], armored: &[u8]) -> Result<(), String> {
        let sig = SshSig::from_pem(armored).map_err(|_| "its signature is not an SSH signature".to_owned())?;
        if sig.public_key() != self.key.public_key().key_data() {
            return Err(format!(
                "it is signed by another key, not this server's ({})",
                self.fingerprint()
            ));
        }
        self.key
            .public_key()
            .verify(NAMESPACE, data, &sig)
            .map_err(|_| "its signature does not match its content".to_owned())
    }

    /// The public key's SHA-256 fingerprint, as ssh-keygen prints it.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The line of an allowed-signers file that trusts this key for `principal`'s commits
    /// (`git -c gpg.ssh.allowedSignersFile=F verify-commit`).
    pub fn allowed_signers_line(&self, principal: &str) -> String {
        let public = self.key.public_key().to_openssh().unwrap_or_default();
        // The key's own comment is not part of the trust: keep type and key only.
        let mut parts = public.split_whitespace();
        let (kind, data) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        format!("{principal} namespaces=\"{NAMESPACE}\" {kind} {data}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key made by OpenSSH's own ssh-keygen.
    fn key_file(dir: &Path, mode: u32) -> PathBuf {
        let path = dir.join("signing");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen (openssh-client) is needed: the test command installs it");
        assert!(made.success());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_key_readable_by_others_is_refused_and_a_private_one_signs() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path(), 0o644);
        let e = Signer::load(&path).unwrap_err();
        assert!(e.contains("mode 0644"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let signer = Signer::load(&path).unwrap();
        let sig = signer.sign(b"tree 0000\n").unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----\n"), "{sig}");
        signer.verify(b"tree 0000\n", sig.as_bytes()).unwrap();
        let e = signer.verify(b"tree 0001\n", sig.as_bytes()).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        let line = signer.allowed_signers_line("noc@example.net");
        assert!(
            line.starts_with("noc@example.net namespaces=\"git\" ssh-ed25519 "),
            "{line}"
        );
        assert!(signer.fingerprint().starts_with("SHA256:"));
    }
}
