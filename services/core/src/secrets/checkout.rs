//! Unsealing a plain checkout of the backup repository in place: the manual path of the
//! emergency runbook (`git checkout <hash> -- <path>`, then `config-backup-server unseal`),
//! for when the service itself is down.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Sealer, is_sealed};

/// What an unseal did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unsealed {
    /// Files whose sealed values were opened and written back in clear.
    pub unsealed: Vec<String>,
    /// Files that held nothing sealed (left as they are).
    pub plain: usize,
}

/// Unseals files of the checkout at `root` in place: `paths` (relative to `root`, as in
/// the repository), or every file but `.git` when empty. Each file is opened with its
/// repository path (bound into its seal) and replaced atomically, mode kept. Stops at
/// the first file that cannot be opened, naming it; files already written stay so.
pub fn unseal_checkout(sealer: &Sealer, root: &Path, paths: &[String]) -> Result<Unsealed, String> {
    let files: Vec<String> = if paths.is_empty() {
        let mut all = Vec::new();
        for entry in walkdir::WalkDir::new(root)
            .into_iter()
            .filter_entry(|e| e.file_name() != ".git")
        {
            let entry = entry.map_err(|e| format!("reading {}: {e}", root.display()))?;
            if entry.file_type().is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .into_owned();
                all.push(rel);
            }
        }
        all.sort();
        all
    } else {
        paths.iter().map(|p| p.trim_start_matches("./").to_owned()).collect()
    };
    let mut out = Unsealed::default();
    for rel in files {
        if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
            return Err(format!("{rel}: give paths relative to the checkout, inside it"));
        }
        let abs: PathBuf = root.join(&rel);
        let content = std::fs::read(&abs).map_err(|e| format!("{rel}: {e}"))?;
        if !is_sealed(&content) {
            out.plain += 1;
            continue;
        }
        let clear = sealer.unseal(&rel, &content).map_err(|e| e.to_string())?;
        let mode = std::fs::metadata(&abs)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        crate::fs::write_atomically(&abs, &clear, mode).map_err(|e| format!("{rel}: {e}"))?;
        out.unsealed.push(rel);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Domain;

    #[test]
    fn a_checkout_is_unsealed_in_place_byte_for_byte() {
        let sealer = Sealer::new(
            super::super::Keyring::parse(&super::super::Keyring::new_key_line()).unwrap(),
            Default::default(),
        );
        let dir = tempfile::tempdir().unwrap();
        let clients = b"client a {\n\tsecret = s3cret\n}\n";
        std::fs::create_dir_all(dir.path().join("config/radius")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        let sealed = sealer.seal(Some(Domain::Radius), "config/radius/clients.conf", clients);
        std::fs::write(dir.path().join("config/radius/clients.conf"), &sealed).unwrap();
        std::fs::write(dir.path().join("config/radius/dictionary"), b"plain\n").unwrap();
        std::fs::write(dir.path().join(".git/x"), b"ENC[v1,zz]").unwrap();
        let done = unseal_checkout(&sealer, dir.path(), &[]).unwrap();
        assert_eq!(done.unsealed, vec!["config/radius/clients.conf".to_owned()]);
        assert_eq!(done.plain, 1);
        assert_eq!(
            std::fs::read(dir.path().join("config/radius/clients.conf")).unwrap(),
            clients
        );
        assert!(unseal_checkout(&sealer, dir.path(), &["../x".into()]).is_err());
    }
}
