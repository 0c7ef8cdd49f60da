//! A run's per-file work, on every core: read a file (with the metadata taken before the
//! read), seal it, hash the stored form, stage it when it changed, and tell a change in
//! place in the service's terms while both stored forms are in hand. Results come back in
//! the files' order, so a run does not depend on thread timing.

use super::*;
use crate::secrets::Sealer;
use crate::statcache::{Digest256, hex_is};

/// Reads a file into `buf` (replacing its content) and returns its metadata taken before
/// the read: a write after it moves the mtime and ctime, so the cache entry made from the
/// two is never newer than the content.
fn read_with_stat(path: &std::path::Path, buf: &mut Vec<u8>) -> std::io::Result<FileStat> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    buf.clear();
    buf.reserve(usize::try_from(meta.len()).unwrap_or(0));
    f.read_to_end(buf)?;
    Ok(FileStat::of(&meta))
}

fn sha256(bytes: &[u8]) -> Digest256 {
    Sha256::digest(bytes).into()
}

/// A file of a domain that must be read this run.
pub(super) struct Pending<'f> {
    /// The domain it belongs to (its sealing rules are the domain's).
    pub(super) domain: Domain,
    pub(super) file: &'f sources::SourceFile,
    pub(super) mode: u32,
    /// Its entry in the branch's manifest.
    pub(super) committed: Option<ManifestEntry>,
    /// Its blob in the branch's tree.
    pub(super) tree_blob: Option<git2::Oid>,
    /// Its stat cache entry, whatever its metadata now, if made under this sealing.
    pub(super) known: Option<crate::statcache::Entry>,
}

/// A file read and hashed (and staged when it changed).
pub(super) struct Hashed {
    pub(super) stat: FileStat,
    pub(super) sha256: Digest256,
    pub(super) blob: git2::Oid,
    pub(super) staged: Option<repo::Staged>,
    /// The SHA-256 of the tree's content when it differed from an unchanged manifest entry.
    pub(super) hand_edit: Option<String>,
    /// Whether the secret rules found a secret in it (or it is a private key).
    pub(super) secret: bool,
    /// Its content's change in the service's terms, when it changed in place.
    pub(super) summary: Option<crate::summary::Summary>,
    /// The keyed digest of its clear content (none for a link).
    pub(super) clear: Option<Digest256>,
}

/// Reads, hashes and stages one file. A read error is the file's own (reported, the
/// backed-up version kept); a write error fails the domain.
fn hash_one(
    repo: &git2::Repository,
    sealer: &Sealer,
    known: &crate::summary::KnownSummaries,
    p: &Pending<'_>,
    bytes: &mut Vec<u8>,
) -> FileResult {
    let sealed;
    let mut secret = false;
    let mut clear = None;
    let (stat, bytes) = if let Some(target) = &p.file.link {
        // A symlink's content is its target text, read by the scan; it is never followed.
        (p.file.stat, target.as_bytes())
    } else {
        let stat = match read_with_stat(&p.file.abs, bytes) {
            Ok(stat) => stat,
            Err(e) => return Ok(Err(e)),
        };
        clear = Some(sealer.clear_digest(p.file.path.as_str(), bytes));
        // The clear content it had when the committed, tree-held version was made from it:
        // its stored form is that version, with no sealing and no hashing again.
        if let (Some(known), Some(committed)) = (&p.known, &p.committed)
            && known.clear == clear
            && hex_is(&committed.sha256, &known.sha256)
            && committed.mode == p.mode
            && p.tree_blob == Some(known.blob)
        {
            return Ok(Ok(Box::new(Hashed {
                stat,
                sha256: known.sha256,
                blob: known.blob,
                staged: None,
                hand_edit: None,
                secret: known.secret,
                summary: None,
                clear,
            })));
        }
        // What is stored, hashed and published is the sealed form: its secrets are keyed.
        sealed = sealer.seal(Some(p.domain), p.file.path.as_str(), bytes);
        secret = matches!(sealed, std::borrow::Cow::Owned(_));
        (stat, sealed.as_ref())
    };
    let sha256 = sha256(bytes);
    let unchanged = p
        .committed
        .as_ref()
        .is_some_and(|c| hex_is(&c.sha256, &sha256) && c.mode == p.mode);
    let (blob, staged, hand_edit) = if !unchanged {
        let staged = repo::stage_into(repo, &p.file.path, bytes, p.mode)?;
        (staged.id, Some(staged), None)
    } else {
        // The committed content's blob, from the stat cache (the SHA-256 just computed is
        // the committed one: the same bytes), or hashed (git's SHA-1, with its collision
        // detection, costs more than the read and the SHA-256 together).
        let blob = match p.known.as_ref().filter(|k| k.sha256 == sha256) {
            Some(known) => known.blob,
            None => git2::Oid::hash_object(git2::ObjectType::Blob, bytes)?,
        };
        match p.tree_blob {
            Some(tree_blob) if tree_blob != blob => {
                let tree_sha = hex::encode(self::sha256(repo.find_blob(tree_blob)?.content()));
                let staged = repo::stage_into(repo, &p.file.path, bytes, p.mode)?;
                (blob, Some(staged), Some(tree_sha))
            }
            _ => (blob, None, None),
        }
    };
    // A file changed in place is told in its service's terms here, on the hashing thread,
    // which holds the new stored form (the old one is the branch's blob), unless the
    // caller told this very change already.
    let summary = match (&staged, p.committed.is_some(), p.tree_blob, p.file.link.is_none()) {
        (Some(_), true, Some(old), true) if let Some(s) = known.get(p.file.path.as_str(), old, &sha256) => {
            Some(s.clone())
        }
        (Some(_), true, Some(old), true) => {
            let old = repo.find_blob(old)?;
            Some(crate::summary::summarize(
                p.domain,
                p.file.path.as_str(),
                Some(old.content()),
                Some(bytes),
            ))
        }
        _ => None,
    };
    Ok(Ok(Box::new(Hashed {
        stat,
        sha256,
        blob,
        summary,
        staged,
        hand_edit,
        secret,
        clear,
    })))
}

/// What reading one pending file gave: its hash (or its own read error), or a write
/// error that fails its domain. Boxed: a run holds one per file read until its domain is
/// committed (40,000 at once in a first backup of L), most of them small.
pub(super) type FileResult = Result<std::io::Result<Box<Hashed>>, RepoError>;

/// [`hash_one`] for every pending file of every domain, in one pool of as many threads as
/// there are cores (each with its own handle on the repository), results in the files'
/// order. One pool for the whole run: the domains' files share the cores instead of
/// each domain starting (and draining) its own. A write error is the file's result, so
/// the other domains' files are still read.
pub(super) fn hash_and_stage(
    wc: &WorkingCopy,
    sealer: &Sealer,
    known: &crate::summary::KnownSummaries,
    pending: &[&Pending<'_>],
) -> Result<Vec<FileResult>, EngineError> {
    // A file read may be staged: written into the work tree, in place.
    if !pending.is_empty() {
        wc.unmark_clean()?;
    }
    let threads = crate::parallel::threads_for(pending.len(), 32);
    if threads <= 1 {
        let mut buf = Vec::new();
        return Ok(pending
            .iter()
            .map(|p| hash_one(wc.repository(), sealer, known, p, &mut buf))
            .collect());
    }
    let git_dir = wc.repository().path().to_path_buf();
    crate::parallel::in_order(
        pending,
        threads,
        |next| -> Result<Vec<(usize, FileResult)>, EngineError> {
            let repo = git2::Repository::open(&git_dir).map_err(RepoError::from)?;
            // One read buffer per thread: a buffer per file, freed between files of mixed
            // sizes, fragments the heap on a large site.
            let mut buf = Vec::new();
            let mut out = Vec::new();
            while let Some((i, p)) = next() {
                out.push((i, hash_one(&repo, sealer, known, p, &mut buf)));
            }
            Ok(out)
        },
        || EngineError::Internal("a hashing thread panicked".into()),
    )
}
