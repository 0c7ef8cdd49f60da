//! The secrets key file (`CONFIG_BACKUP_SECRETS_KEY_FILE`): one or more 256-bit master
//! keys, the first of which seals; the others only unseal (what a key rotation leaves
//! behind). Keys never leave this module in a printable form: [`Keyring`]'s `Debug` shows
//! key ids only, and key bytes are zeroized on drop.
//!
//! File format (text, mode 0600 or stricter; `#` starts a comment):
//!
//! ```text
//! # config-backup secrets key
//! config-backup-secrets-key v1 <base64 of 32 random bytes>
//! ```

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The first word of a key line.
pub const KEY_LINE: &str = "config-backup-secrets-key v1";

/// One master key and the subkeys derived from it (HKDF-SHA256).
pub struct Key {
    id: String,
    /// XChaCha20-Poly1305 under the sealing subkey (its key schedule zeroized on drop).
    pub(super) cipher: chacha20poly1305::XChaCha20Poly1305,
    /// HMAC-SHA256 under the nonce subkey, keyed once and cloned per value.
    nonce_mac: Hmac<Sha256>,
}

impl Key {
    /// From 32 bytes of master key.
    pub fn from_master(master: &[u8; 32]) -> Key {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"config-backup secrets v1"), master);
        let mut seal = Zeroizing::new([0u8; 32]);
        let mut nonce = Zeroizing::new([0u8; 32]);
        let mut id = Zeroizing::new([0u8; 4]);
        // 32 and 4 bytes are far below HKDF's limit of 255 hash lengths.
        hk.expand(b"seal", seal.as_mut()).expect("valid HKDF length");
        hk.expand(b"nonce", nonce.as_mut()).expect("valid HKDF length");
        hk.expand(b"key id", id.as_mut()).expect("valid HKDF length");
        use chacha20poly1305::KeyInit as _;
        Key {
            id: hex::encode(id.as_ref()),
            cipher: chacha20poly1305::XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*seal)),
            nonce_mac: <Hmac<Sha256> as Mac>::new_from_slice(nonce.as_ref()).expect("HMAC takes any key length"),
        }
    }

    /// The key id: 8 hex digits, derived from the key (public: it names the key in
    /// sealed values and error messages, and reveals nothing of it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 under the nonce key of a file's clear content, for the stat cache:
    /// its own label first, so it never equals a nonce's input.
    pub(super) fn content_digest(&self, path: &[u8], content: &[u8]) -> [u8; 32] {
        let mut mac = self.nonce_mac.clone();
        for p in [b"config-backup clear content v1".as_slice(), path, content] {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA256 under the nonce key, over length-prefixed parts.
    pub(super) fn synthetic_nonce(&self, parts: &[&[u8]]) -> [u8; 24] {
        let mut mac = self.nonce_mac.clone();
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        let full = mac.finalize().into_bytes();
        let mut n = [0u8; 24];
        n.copy_from_slice(&full[..24]);
        n
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

/// The keys of the key file, the sealing key first.
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// Why the key file cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct KeyFileError(pub String);

impl Keyring {
    /// A keyring of these keys (the first seals). Panics on an empty list.
    pub fn new(keys: Vec<Key>) -> Keyring {
        assert!(!keys.is_empty(), "a keyring needs a key");
        Keyring { keys }
    }

    /// The key that seals.
    pub fn sealing(&self) -> &Key {
        &self.keys[0]
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key id, the sealing key's first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id()).collect()
    }

    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<Keyring, KeyFileError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(b64) = line.strip_prefix(KEY_LINE) else {
                return Err(KeyFileError(format!(
                    "line {}: not a key line (expected \"{KEY_LINE} <base64 of 32 bytes>\")",
                    n + 1
                )));
            };
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| KeyFileError(format!("line {}: the key is not valid base64", n + 1)))?,
            );
            let master: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                KeyFileError(format!(
                    "line {}: a key is 32 bytes, this one is {}",
                    n + 1,
                    bytes.len()
                ))
            })?;
            keys.push(Key::from_master(master));
        }
        if keys.is_empty() {
            return Err(KeyFileError("holds no key".to_owned()));
        }
        Ok(Keyring { keys })
    }

    /// Reads the key file; it must be readable by its owner only.
    pub fn load(path: &Path) -> Result<Keyring, KeyFileError> {
        let meta = std::fs::metadata(path).map_err(|e| KeyFileError(format!("{}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(KeyFileError(format!(
                "{} is readable by group or others (mode {:o}): chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| KeyFileError(format!("{}: {e}", path.display())))?,
        );
        Keyring::parse(&text).map_err(|e| KeyFileError(format!("{}: {e}", path.display())))
    }

    /// Makes a new key file (mode 0600) with one random key; never replaces a file.
    pub fn generate(path: &Path) -> Result<Keyring, KeyFileError> {
        let fail = |e: std::io::Error| KeyFileError(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut master = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rng(), master.as_mut());
        let text = Zeroizing::new(format!(
            "# config-backup secrets key: back this file up apart from the backup repository.\n\
             # Without it, sealed secrets in the repository cannot be restored.\n\
             {KEY_LINE} {}\n",
            base64::engine::general_purpose::STANDARD.encode(master.as_ref())
        ));
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        f.write_all(text.as_bytes()).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        drop(f);
        // A hard link never replaces an existing file (two starts racing keep one key).
        std::fs::hard_link(&tmp, path).map_err(fail)?;
        let _ = std::fs::remove_file(&tmp);
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(Keyring::new(vec![Key::from_master(&master)]))
    }

    /// Rotates the key file: a new key first (it seals from now on), the old ones kept
    /// after it (they still open what they sealed). Atomic; the mode stays 0600. Returns
    /// the new key's id.
    pub fn rotate(path: &Path) -> Result<String, KeyFileError> {
        let fail = |e: std::io::Error| KeyFileError(format!("{}: {e}", path.display()));
        Keyring::load(path)?;
        let old = Zeroizing::new(std::fs::read_to_string(path).map_err(fail)?);
        let line = Keyring::new_key_line();
        let id = Keyring::parse(&line)?.sealing().id().to_owned();
        let text = Zeroizing::new(format!(
            "# config-backup secrets key: the first key seals, the others only unseal.\n{}{}",
            line.as_str(),
            old.lines()
                .filter(|l| l.trim_start().starts_with(KEY_LINE))
                .map(|l| format!("{}\n", l.trim()))
                .collect::<String>()
        ));
        crate::fs::write_atomically(path, text.as_bytes(), 0o600).map_err(fail)?;
        Ok(id)
    }

    /// A fresh random key line.
    pub fn new_key_line() -> Zeroizing<String> {
        let mut master = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rng(), master.as_mut());
        Zeroizing::new(format!(
            "{KEY_LINE} {}\n",
            base64::engine::general_purpose::STANDARD.encode(master.as_ref())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_with_two_keys_seals_with_the_first() {
        let a = Keyring::new_key_line();
        let b = Keyring::new_key_line();
        let ring = Keyring::parse(&format!("# c\n{}{}", a.as_str(), b.as_str())).unwrap();
        assert_eq!(ring.ids().len(), 2);
        assert_eq!(ring.sealing().id(), Keyring::parse(&a).unwrap().sealing().id());
        assert!(ring.get(Keyring::parse(&b).unwrap().sealing().id()).is_some());
    }

    #[test]
    fn bad_key_files_are_refused_with_the_line() {
        assert!(Keyring::parse("").unwrap_err().0.contains("no key"));
        assert!(Keyring::parse("nonsense").unwrap_err().0.contains("line 1"));
        let short = format!("{KEY_LINE} AAAA");
        assert!(Keyring::parse(&short).unwrap_err().0.contains("32 bytes"));
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        Keyring::generate(&p).unwrap();
        assert!(Keyring::load(&p).is_ok());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Keyring::load(&p).unwrap_err().0.contains("chmod 600"));
        // Generating never replaces a key file.
        assert!(Keyring::generate(&p).is_err());
        // Rotation puts a new key first and keeps the old one.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = Keyring::load(&p).unwrap().sealing().id().to_owned();
        let new = Keyring::rotate(&p).unwrap();
        let after = Keyring::load(&p).unwrap();
        assert_eq!(after.ids(), vec![new.as_str(), before.as_str()]);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let ring = Keyring::parse(&Keyring::new_key_line()).unwrap();
        let shown = format!("{ring:?}");
        assert!(shown.contains(ring.sealing().id()));
        assert!(!shown.contains("seal:"));
    }
}
