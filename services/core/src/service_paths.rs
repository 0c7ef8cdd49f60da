//! Service paths: where a service reads its files (`/etc/unbound`) and where those files
//! are in the backup (`config/unbound`), from `CONFIG_ROLLBACK_SERVICE_PATHS__<domain>`.
//! A validation command of such a domain runs in a private mount namespace where the
//! target's staged files are bind-mounted at the service path, so a checker that follows
//! the configuration's own absolute includes (`include: /etc/unbound/unbound.conf.d/*`)
//! reads exactly the target.
//!
//! Invariant: the host's own service path is never touched. Every mount is made inside
//! the command's private namespace (`unshare --mount --propagation private`) and ends
//! with it; a service path missing on the host is made inside a tmpfs that mirrors its
//! nearest existing ancestor (each entry bind-mounted), never created on the host.
//! Paths come from the configuration and the staging directory only.

use std::path::{Component, Path, PathBuf};

use crate::command::shell_quote;
use crate::domain::RepoPath;

/// One mapping: the service reads `service`; the backup holds it under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePath {
    /// Absolute path the service reads (`/etc/unbound`).
    pub service: PathBuf,
    /// The repository directory holding those files (`config/unbound`).
    pub prefix: RepoPath,
}

/// Parses `SERVICE_PATH=REPO_PREFIX[,SERVICE_PATH=REPO_PREFIX...]`.
pub fn parse(value: &str) -> Result<Vec<ServicePath>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (service, prefix) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not SERVICE_PATH=REPO_PREFIX (e.g. /etc/unbound=config/unbound)"))?;
        let service = PathBuf::from(service.trim());
        let clean = service.is_absolute()
            && service.components().count() > 1
            && service
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !clean || service.to_str().is_none_or(|s| s.contains(['\n', '\0'])) {
            return Err(format!(
                "{:?}: the service path must be absolute, not /, without . or .. components",
                service.display().to_string()
            ));
        }
        let prefix: RepoPath = prefix
            .trim()
            .trim_end_matches('/')
            .parse()
            .map_err(|e: crate::domain::BadRepoPath| e.to_string())?;
        out.push(ServicePath { service, prefix });
    }
    if out.is_empty() {
        return Err("no SERVICE_PATH=REPO_PREFIX given".to_owned());
    }
    Ok(out)
}

/// Whether this process may make a private mount namespace (CAP_SYS_ADMIN): `Err` says
/// what failed.
pub fn check_namespace_privilege() -> Result<(), String> {
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "true"])
        .output()
        .map_err(|e| format!("cannot run unshare (util-linux): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "a private mount namespace cannot be made (CAP_SYS_ADMIN is needed): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The command line that runs `command` with each service path showing the staged files
/// under `staging/<prefix>` (which is made when the target has none there).
pub fn sandboxed(command: &str, staging: &Path, paths: &[ServicePath]) -> std::io::Result<String> {
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let mut script = String::from("set -e\n");
    for (i, sp) in paths.iter().enumerate() {
        let source = staging.join(sp.prefix.as_str());
        std::fs::create_dir_all(&source)?;
        if sp.service.exists() {
            script.push_str(&format!("mount --bind {} {}\n", q(&source), q(&sp.service)));
            continue;
        }
        // Missing on the host: mirror the nearest existing ancestor in a tmpfs, make the
        // path there, and mount the mirror over the ancestor (in this namespace only).
        let ancestor = sp
            .service
            .ancestors()
            .skip(1)
            .find(|a| a.is_dir())
            .unwrap_or(Path::new("/"));
        let tail = sp.service.strip_prefix(ancestor).unwrap_or(&sp.service);
        let mirror = staging.join(format!(".cb-mirror-{i}"));
        std::fs::create_dir_all(&mirror)?;
        script.push_str(&format!("mount -t tmpfs -o mode=0755 cb-mirror {}\n", q(&mirror)));
        for entry in std::fs::read_dir(ancestor)? {
            let entry = entry?;
            let (from, to) = (entry.path(), mirror.join(entry.file_name()));
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                let target = std::fs::read_link(&from)?;
                script.push_str(&format!("ln -s {} {}\n", q(&target), q(&to)));
            } else if kind.is_dir() {
                script.push_str(&format!("mkdir {0}\nmount --rbind {1} {0}\n", q(&to), q(&from)));
            } else {
                script.push_str(&format!(": > {0}\nmount --bind {1} {0}\n", q(&to), q(&from)));
            }
        }
        let inside = mirror.join(tail);
        script.push_str(&format!(
            "mkdir -p {0}\nmount --bind {1} {0}\nmount --rbind {2} {3}\n",
            q(&inside),
            q(&source),
            q(&mirror),
            q(ancestor)
        ));
    }
    script.push_str(&format!("exec sh -c {}\n", shell_quote(command)));
    Ok(format!(
        "exec unshare --mount --propagation private -- sh -c {}",
        shell_quote(&script)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_and_bad_ones_name_what_is_allowed() {
        let p = parse("/etc/unbound=config/unbound, /etc/freeradius/3.0=config/radius/").unwrap();
        assert_eq!(p[0].service, Path::new("/etc/unbound"));
        assert_eq!(p[1].prefix.as_str(), "config/radius");
        for bad in [
            "",
            "etc/unbound=config/unbound",
            "/=config",
            "/etc/../x=config",
            "/etc/unbound",
            "/etc/u=../x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
