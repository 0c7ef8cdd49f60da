//! Diff between two commits of the backup repository, per file, with each file's domain,
//! line counts and a capped unified patch. Binary files are flagged, never dumped.
//!
//! Secrets are redacted for readers: a sealed value shows as a placeholder saying whether
//! it changed, a file sealed whole is flagged `sealed` without a patch, and history from
//! before sealing is sealed on the fly before it is compared, so its clear secrets are
//! never shown either. Only `reveal_secrets` (an admin's call, recorded by the caller)
//! shows the plaintext.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ErrorCode, Oid, Repository};

use crate::domain::ChangeKind;
use crate::domain::{CommitHash, CommitPrefix, Domain, RepoPath};
use crate::error::EngineError;
use crate::metadata::FileMeta;
use crate::repo::WorkingCopy;
use crate::secrets::{self, Sealer};

/// Caps on patch text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffLimits {
    /// Bytes of patch per file.
    pub per_file_bytes: usize,
    /// Bytes of patch in the whole answer.
    pub total_bytes: usize,
}

impl Default for DiffLimits {
    fn default() -> Self {
        DiffLimits {
            per_file_bytes: 256 * 1024,
            total_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffQuery {
    /// The older commit.
    pub commit1: CommitPrefix,
    /// The newer commit.
    pub commit2: CommitPrefix,
    /// Only files of this domain.
    pub domain: Option<Domain>,
    /// Only this path.
    pub path: Option<RepoPath>,
    /// Patch caps.
    pub limits: DiffLimits,
    /// Show secrets in clear (admins only; the caller records it).
    pub reveal_secrets: bool,
}

/// One file's difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    /// The path.
    pub path: String,
    /// Its domain, if a manifest at either commit lists it.
    pub domain: Option<Domain>,
    /// Added, modified or deleted.
    pub kind: ChangeKind,
    /// Lines added.
    pub additions: usize,
    /// Lines deleted.
    pub deletions: usize,
    /// Unified patch (empty for binary files).
    pub patch: String,
    /// Whether the file is binary.
    pub binary: bool,
    /// Whether the patch was cut.
    pub truncated: bool,
    /// Whether the file is sealed whole (a private key): no patch is shown.
    pub sealed: bool,
    /// Old git mode.
    pub old_mode: Option<u32>,
    /// New git mode.
    pub new_mode: Option<u32>,
    /// The change of type, mode, owner or group in words ("mode 0600 → 0644"), when both
    /// commits recorded the file's metadata.
    pub metadata_changes: Vec<String>,
    /// The change in the service's own terms, from the stored forms of both sides.
    pub summary: crate::summary::Summary,
}

/// The difference between two commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffResult {
    /// commit1 resolved.
    pub commit1: CommitHash,
    /// commit2 resolved.
    pub commit2: CommitHash,
    /// Changed files, in path order.
    pub files: Vec<FileDiff>,
    /// Lines added in all files.
    pub additions: usize,
    /// Lines deleted in all files.
    pub deletions: usize,
    /// Whether any patch was cut.
    pub truncated: bool,
}

/// Resolves a full or abbreviated hex to a commit: ambiguous → invalid argument,
/// unknown → not found.
pub fn resolve(repo: &Repository, prefix: &CommitPrefix, field: &'static str) -> Result<Oid, EngineError> {
    match repo.find_commit_by_prefix(prefix.as_str()) {
        Ok(c) => Ok(c.id()),
        Err(e) if e.code() == ErrorCode::Ambiguous => Err(EngineError::InvalidArgument {
            field,
            message: format!("{} is ambiguous: give more hexadecimal digits", prefix.as_str()),
        }),
        Err(e) if e.code() == ErrorCode::NotFound || e.code() == ErrorCode::InvalidSpec => Err(EngineError::NotFound(
            format!("{field}: commit {} not found in the backup repository", prefix.as_str()),
        )),
        Err(e) => Err(EngineError::Internal(format!("looking up {}: {e}", prefix.as_str()))),
    }
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The query's two commits, resolved (see [`resolve`]).
pub fn resolve_pair(repo: &Repository, q: &DiffQuery) -> Result<(Oid, Oid), EngineError> {
    Ok((
        resolve(repo, &q.commit1, "commit1")?,
        resolve(repo, &q.commit2, "commit2")?,
    ))
}

/// Compares two commits, resolved from the query's ([`resolve_pair`]): its filters, caps
/// and `reveal_secrets` apply.
pub fn diff_between(
    wc: &WorkingCopy,
    sealer: &Sealer,
    commit1: Oid,
    commit2: Oid,
    q: &DiffQuery,
) -> Result<DiffResult, EngineError> {
    diff_oids(wc, sealer, Some(commit1), commit2, q)
}

/// What one commit changed against its first parent (or against nothing, for the first).
pub fn commit_changes(
    wc: &WorkingCopy,
    sealer: &Sealer,
    commit: Oid,
    limits: DiffLimits,
) -> Result<DiffResult, EngineError> {
    let parent = wc
        .repository()
        .find_commit(commit)
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .parent_ids()
        .next();
    let any: CommitPrefix = commit
        .to_string()
        .parse()
        .map_err(|e: crate::domain::BadCommitPrefix| EngineError::Internal(e.to_string()))?;
    let q = DiffQuery {
        commit1: any.clone(),
        commit2: any,
        domain: None,
        path: None,
        limits,
        reveal_secrets: false,
    };
    diff_oids(wc, sealer, parent, commit, &q)
}

fn diff_oids(
    wc: &WorkingCopy,
    sealer: &Sealer,
    c1: Option<Oid>,
    c2: Oid,
    q: &DiffQuery,
) -> Result<DiffResult, EngineError> {
    // Which domain each path belongs to, from the manifests at both ends (only the asked
    // domain's when there is a filter: every other path is left out anyway).
    // Their metadata at both ends, too: a change of mode or owner alone is a change.
    let mut owner: BTreeMap<String, Domain> = BTreeMap::new();
    let mut metas: [BTreeMap<String, FileMeta>; 2] = Default::default();
    for d in Domain::ALL
        .into_iter()
        .filter(|d| q.domain.is_none_or(|want| want == *d))
    {
        for (side, commit) in [c1, Some(c2)].into_iter().enumerate() {
            for (path, entry) in wc
                .manifest_at(commit, d)
                .map_err(|e| EngineError::Internal(e.to_string()))?
            {
                owner.entry(path.to_string()).or_insert(d);
                if let Some(m) = entry.meta {
                    metas[side].insert(path.to_string(), m);
                }
            }
        }
    }
    let metadata_changes = |path: &str| match (metas[0].get(path), metas[1].get(path)) {
        (Some(o), Some(n)) => crate::metadata::describe(o, n),
        _ => Vec::new(),
    };

    // Patches are made through bare handles on the repository: the stored content is
    // diffed as it is, with no lookup of diff attributes in the work tree for each path
    // (a tenth of a large diff's time), and no file the site happens to hold there
    // (a captured `.gitattributes`) changes how it is shown.
    let bare = Repository::open_bare(wc.repository().path()).map_err(git)?;
    let repo = &bare;
    let diff = tree_diff(repo, c1, c2, q)?;
    let mut files = Vec::new();
    for (idx, delta) in diff.deltas().enumerate() {
        let file = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .unwrap_or(Path::new(""));
        let path = file.to_string_lossy().into_owned();
        if path.starts_with(crate::repo::METADATA_DIR) {
            continue;
        }
        let domain = owner.get(&path).copied();
        if q.domain.is_some() && domain != q.domain {
            continue;
        }
        let kind = match delta.status() {
            git2::Delta::Added => ChangeKind::Added,
            git2::Delta::Deleted => ChangeKind::Deleted,
            _ => ChangeKind::Modified,
        };
        let mode = |f: git2::DiffFile<'_>| (!f.id().is_zero()).then(|| i32::from(f.mode()) as u32);
        let metadata_changes = metadata_changes(&path);
        // Told from the blobs the patch reads (on the patch threads), with the metadata.
        let summary = crate::summary::Summary::default().with_words("metadata", &metadata_changes);
        files.push((
            idx,
            FileDiff {
                path,
                domain,
                kind,
                additions: 0,
                deletions: 0,
                patch: String::new(),
                binary: delta.flags().is_binary(),
                truncated: false,
                sealed: false,
                old_mode: mode(delta.old_file()),
                new_mode: mode(delta.new_file()),
                summary,
                metadata_changes,
            },
        ));
    }
    // Files whose content and git mode are the same but whose owner or mode changed.
    let in_tree: std::collections::BTreeSet<&str> = files.iter().map(|(_, f)| f.path.as_str()).collect();
    let metadata_only: Vec<FileDiff> = metas[1]
        .iter()
        .filter(|(path, n)| {
            !in_tree.contains(path.as_str())
                && q.path.as_ref().is_none_or(|p| p.as_str() == path.as_str())
                && metas[0].get(*path).is_some_and(|o| !o.same_access(n))
        })
        .map(|(path, _)| FileDiff {
            path: path.clone(),
            domain: owner.get(path).copied(),
            kind: ChangeKind::Modified,
            additions: 0,
            deletions: 0,
            patch: String::new(),
            binary: false,
            truncated: false,
            sealed: false,
            old_mode: None,
            new_mode: None,
            metadata_changes: metadata_changes(path),
            summary: crate::summary::Summary::default().with_words("metadata", &metadata_changes(path)),
        })
        .collect();
    let patches = patches(repo, sealer, &diff, c1, c2, q, &files)?;
    drop(diff);
    let mut out = DiffResult {
        commit1: c1.unwrap_or(c2).into(),
        commit2: c2.into(),
        files: Vec::with_capacity(files.len()),
        additions: 0,
        deletions: 0,
        truncated: false,
    };
    // The answer's byte budget is spent in file order, as if the patches were made one
    // after the other.
    let mut budget = q.limits.total_bytes;
    for ((_, mut fd), p) in files.into_iter().zip(patches) {
        match p {
            Some(p) if !fd.binary => {
                let words = fd.metadata_changes.clone();
                fd.summary = p.summary.with_words("metadata", &words);
                fd.sealed = p.sealed;
                fd.additions = p.additions;
                fd.deletions = p.deletions;
                let cap = q.limits.per_file_bytes.min(budget);
                let kept = cut(&p.text, cap);
                fd.truncated = kept.len() < p.full_len;
                budget -= kept.len();
                fd.patch = kept.to_owned();
            }
            _ => fd.binary = true,
        }
        out.additions += fd.additions;
        out.deletions += fd.deletions;
        out.truncated |= fd.truncated;
        out.files.push(fd);
    }
    if !metadata_only.is_empty() {
        out.files.extend(metadata_only);
        out.files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(out)
}

fn tree_diff<'r>(repo: &'r Repository, c1: Option<Oid>, c2: Oid, q: &DiffQuery) -> Result<git2::Diff<'r>, EngineError> {
    let t1 = c1
        .map(|c| repo.find_commit(c).and_then(|c| c.tree()))
        .transpose()
        .map_err(git)?;
    let t2 = repo.find_commit(c2).and_then(|c| c.tree()).map_err(git)?;
    let mut opts = git2::DiffOptions::new();
    if let Some(p) = &q.path {
        opts.pathspec(p.as_str()).disable_pathspec_match(true);
    }
    repo.diff_tree_to_tree(t1.as_ref(), Some(&t2), Some(&mut opts))
        .map_err(git)
}

fn git(e: git2::Error) -> EngineError {
    EngineError::Internal(format!("diff: {e}"))
}

/// One file's patch: its line counts and as much of its text as the answer can hold.
struct Patch {
    additions: usize,
    deletions: usize,
    /// The text, cut to what this file could keep at best (see `patches`).
    text: String,
    /// The length of the whole text.
    full_len: usize,
    /// A file sealed whole: no text.
    sealed: bool,
    /// The change in the service's terms, from the stored forms.
    summary: crate::summary::Summary,
}

/// The patches of `files` (indexes into `diff`, the tree diff of `c1`..`c2`), in order;
/// `None` for a binary file. Made from `diff` when one thread is enough, else on every
/// core: each thread diffs the trees again (a `git2::Diff` is bound to one repository
/// handle) and takes files in turn. A thread
/// keeps at most the answer's whole budget of text: the budget is spent greedily in file
/// order, so what the files before one have used can only be more than what this thread's
/// own earlier files used, and what the answer keeps of a file is never more than what
/// its thread kept.
fn patches(
    repo: &Repository,
    sealer: &Sealer,
    diff: &git2::Diff<'_>,
    c1: Option<Oid>,
    c2: Oid,
    q: &DiffQuery,
    files: &[(usize, FileDiff)],
) -> Result<Vec<Option<Patch>>, EngineError> {
    let threads = crate::parallel::threads_for(files.len(), 16);
    if threads <= 1 {
        let mut all = files.iter().enumerate();
        let made = make_patches(repo, sealer, diff, q, &mut || all.next())?;
        return Ok(made.into_iter().map(|(_, p)| p).collect());
    }
    let git_dir = repo.path().to_path_buf();
    crate::parallel::in_order(
        files,
        threads,
        |next| {
            // A `git2::Diff` is bound to its repository handle: each thread makes its own
            // (bare, as above).
            let repo = Repository::open_bare(&git_dir).map_err(git)?;
            make_patches(&repo, sealer, &tree_diff(&repo, c1, c2, q)?, q, next)
        },
        || EngineError::Internal("diff: a patch thread panicked".into()),
    )
}

/// One thread's share of `patches`: the files `next` gives, with their index.
fn make_patches<'a>(
    repo: &Repository,
    sealer: &Sealer,
    diff: &git2::Diff<'_>,
    q: &DiffQuery,
    next: &mut dyn FnMut() -> Option<(usize, &'a (usize, FileDiff))>,
) -> Result<Vec<(usize, Option<Patch>)>, EngineError> {
    let mut budget = q.limits.total_bytes;
    let mut out = Vec::new();
    while let Some((i, (idx, fd))) = next() {
        // A file the tree diff already knows is binary gets no patch: its blobs are not read.
        let Some(delta) = diff.get_delta(*idx).filter(|_| !fd.binary) else {
            out.push((i, None));
            continue;
        };
        let (old_blob, new_blob) = (blob(repo, delta.old_file().id())?, blob(repo, delta.new_file().id())?);
        let patch = match patch_of(diff, *idx, &delta, old_blob.as_ref(), new_blob.as_ref())? {
            Some(patch) if !fd.binary && !patch.delta().flags().is_binary() => {
                let (old_side, new_side) = (
                    old_blob.as_ref().map(|b| b.content()),
                    new_blob.as_ref().map(|b| b.content()),
                );
                let (old, new) = (old_side.unwrap_or_default(), new_side.unwrap_or_default());
                let summary = match fd.domain {
                    Some(d) => crate::summary::summarize(d, &fd.path, old_side, new_side),
                    None => Default::default(),
                };
                match view(sealer, fd, old, new, q.reveal_secrets)? {
                    View::Sealed => Some(Patch {
                        additions: 0,
                        deletions: 0,
                        text: String::new(),
                        full_len: 0,
                        sealed: true,
                        summary,
                    }),
                    View::AsStored => Some(Patch {
                        summary,
                        ..render(patch, sealer, fd, (old, new), q, &mut budget)?
                    }),
                    View::Buffers(o, n) => {
                        let path = Path::new(&fd.path);
                        let p = git2::Patch::from_buffers(&o, Some(path), &n, Some(path), None).map_err(git)?;
                        Some(Patch {
                            summary,
                            ..render(p, sealer, fd, (&o, &n), q, &mut budget)?
                        })
                    }
                }
            }
            _ => None,
        };
        out.push((i, patch));
    }
    Ok(out)
}

/// The patch of the diff's `idx`-th file, whose blobs the caller has read. A patch made from
/// the tree diff reads both blobs itself (libgit2 caches no blob), and the summary and
/// the redaction read them again: one file's two versions were inflated twice. A patch
/// made from the blobs in hand is the same text when each side is a plain file (mode
/// 100644: the mode a patch from blobs gives a side) or absent (a file added or removed).
/// A file made executable, or a link, keeps the patch from the tree diff, for its mode
/// lines.
fn patch_of<'b>(
    diff: &git2::Diff<'b>,
    idx: usize,
    delta: &git2::DiffDelta<'_>,
    old: Option<&'b git2::Blob<'_>>,
    new: Option<&'b git2::Blob<'_>>,
) -> Result<Option<git2::Patch<'b>>, EngineError> {
    let plain_or_absent =
        |blob: Option<&git2::Blob<'_>>, f: git2::DiffFile<'_>| blob.is_none() || f.mode() == git2::FileMode::Blob;
    if (old.is_some() || new.is_some())
        && plain_or_absent(old, delta.old_file())
        && plain_or_absent(new, delta.new_file())
    {
        return patch_of_blobs(old, delta.old_file().path(), new, delta.new_file().path())
            .map(Some)
            .map_err(git);
    }
    git2::Patch::from_diff(diff, idx).map_err(git)
}

/// A patch between two blobs, either of which may be absent (the side a file is added or
/// removed on). libgit2 takes an absent side (`git_patch_from_blobs` with NULL); git2's
/// `Patch::from_blobs` takes two blobs only.
///
/// A path git prints as it is is not given to libgit2 (the patch is made unnamed, and
/// [`render`] names its header): with a path, libgit2 looks the file's `diff` attribute
/// up for its diff driver, and with no session to keep what it read, every lookup
/// checks every place attributes may come from (the system's and the user's files,
/// `info/attributes`, the index) for every directory above the path: over a quarter of
/// making these patches (7 % of a Diff). No attribute ever applies here (the host's git
/// config is not read, and nothing writes `info/attributes`), so the driver is
/// libgit2's automatic one either way, and the patch's lines are the same. A path git
/// quotes keeps the lookup, and its header is libgit2's own.
fn patch_of_blobs<'b>(
    old: Option<&'b git2::Blob<'_>>,
    old_path: Option<&Path>,
    new: Option<&'b git2::Blob<'_>>,
    new_path: Option<&Path>,
) -> Result<git2::Patch<'b>, git2::Error> {
    use git2::Binding;
    use std::os::unix::ffi::OsStrExt;
    let c_path = |p: Option<&Path>| {
        p.map(|p| std::ffi::CString::new(p.as_os_str().as_bytes()))
            .transpose()
            .map_err(|_| git2::Error::from_str("a path holds a NUL byte"))
    };
    fn unnamed(p: Option<&Path>) -> Option<&Path> {
        p.map(|p| if printed_as_is(p) { Path::new("") } else { p })
    }
    let (old_path, new_path) = (c_path(unnamed(old_path))?, c_path(unnamed(new_path))?);
    let blob = |b: Option<&git2::Blob<'_>>| b.map_or(std::ptr::null(), |b| b.raw().cast_const());
    let path = |p: &Option<std::ffi::CString>| p.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
    let mut out = std::ptr::null_mut();
    // SAFETY: each blob pointer is null or a live blob borrowed for the call; each path is
    // null or a NUL-terminated string that outlives the call; null options are libgit2's
    // defaults. On success `out` is a patch the caller owns.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libgit2_sys::git_patch_from_blobs(
            &mut out,
            blob(old),
            path(&old_path),
            blob(new),
            path(&new_path),
            std::ptr::null(),
        )
    };
    if rc < 0 {
        return Err(git2::Error::last_error(rc));
    }
    // SAFETY: `out` is the patch libgit2 just made, owned from here on by the `Patch`
    // (freed on drop). It holds its own references to the blobs' data (`git_blob_dup`),
    // and is bound to the blobs' lifetime all the same, as git2's own `from_blobs` is.
    #[allow(unsafe_code)]
    Ok(unsafe { git2::Patch::from_raw(out) })
}

/// Whether git prints a path in a patch's header as it is, unquoted: printable ASCII
/// other than `"` and `\\` (libgit2's `git_str_quote`).
fn printed_as_is(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .all(|b| (b' '..=b'~').contains(b) && *b != b'"' && *b != b'\\')
}

/// A patch's text with the path of an unnamed patch ([`patch_of_blobs`]) in its header:
/// `diff --git a/ b/`, `--- a/` and `+++ b/` before the first hunk are named `path`
/// (which [`printed_as_is`]). Any other text is returned as it is.
fn named<'t>(text: std::borrow::Cow<'t, str>, path: &str) -> std::borrow::Cow<'t, str> {
    const UNNAMED: &str = "diff --git a/ b/\n";
    if !text.starts_with(UNNAMED) {
        return text;
    }
    let header_end = text.find("\n@@").map_or(text.len(), |i| i + 1);
    let mut out = String::with_capacity(text.len() + 4 * path.len());
    out.push_str(&format!("diff --git a/{path} b/{path}\n"));
    for line in text[UNNAMED.len()..header_end].split_inclusive('\n') {
        match line {
            "--- a/\n" => out.push_str(&format!("--- a/{path}\n")),
            "+++ b/\n" => out.push_str(&format!("+++ b/{path}\n")),
            other => out.push_str(other),
        }
    }
    out.push_str(&text[header_end..]);
    std::borrow::Cow::Owned(out)
}

/// A side's blob, read in place (none for the side a file is added or removed on).
fn blob(repo: &Repository, id: Oid) -> Result<Option<git2::Blob<'_>>, EngineError> {
    if id.is_zero() {
        return Ok(None);
    }
    repo.find_blob(id).map(Some).map_err(git)
}

/// What a reader is shown of a file's two versions.
enum View {
    /// A file sealed whole: flagged, never shown.
    Sealed,
    /// The stored (sealed) versions, redacted.
    AsStored,
    /// Other bytes: history from before sealing, sealed now; or plaintext (reveal).
    Buffers(Vec<u8>, Vec<u8>),
}

fn view(sealer: &Sealer, fd: &FileDiff, old: &[u8], new: &[u8], reveal: bool) -> Result<View, EngineError> {
    let unseal_err = |e: secrets::SealError| EngineError::Internal(e.to_string());
    if reveal {
        if !secrets::is_sealed(old) && !secrets::is_sealed(new) {
            return Ok(View::AsStored);
        }
        let o = sealer.unseal(&fd.path, old).map_err(unseal_err)?.into_owned();
        let n = sealer.unseal(&fd.path, new).map_err(unseal_err)?.into_owned();
        return Ok(View::Buffers(o, n));
    }
    // Content stored before sealing is sealed with today's rules before it is shown.
    let normal = |b: &[u8]| -> Option<Vec<u8>> {
        if b.is_empty() || secrets::is_sealed(b) {
            return None;
        }
        match sealer.seal(fd.domain, &fd.path, b) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(v) => Some(v),
        }
    };
    let (o, n) = (normal(old), normal(new));
    let sealed_file = |b: &[u8]| secrets::is_sealed_file(b);
    if o.as_deref().is_some_and(sealed_file)
        || n.as_deref().is_some_and(sealed_file)
        || sealed_file(old)
        || sealed_file(new)
    {
        return Ok(View::Sealed);
    }
    Ok(match (o, n) {
        (None, None) => View::AsStored,
        (o, n) => View::Buffers(o.unwrap_or_else(|| old.to_vec()), n.unwrap_or_else(|| new.to_vec())),
    })
}

/// A patch's line counts and its text, redacted unless revealed, cut to the budget.
fn render(
    mut patch: git2::Patch<'_>,
    sealer: &Sealer,
    fd: &FileDiff,
    (old, new): (&[u8], &[u8]),
    q: &DiffQuery,
    budget: &mut usize,
) -> Result<Patch, EngineError> {
    let (_, additions, deletions) = patch.line_stats().map_err(git)?;
    let cap = q.limits.per_file_bytes.min(*budget);
    // A patch always has at least its header: with nothing left to keep, it need not be
    // printed to know it was cut.
    let (text, full_len) = if cap == 0 {
        (String::new(), 1)
    } else {
        let buf = patch.to_buf().map_err(git)?;
        let text = named(String::from_utf8_lossy(&buf), &fd.path);
        let text = if q.reveal_secrets {
            text.into_owned()
        } else {
            sealer.redact_patch(&fd.path, old, new, &text)
        };
        (cut(&text, cap).to_owned(), text.len())
    };
    *budget -= text.len();
    Ok(Patch {
        additions,
        deletions,
        text,
        full_len,
        sealed: false,
        summary: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use git2::{FileMode, Repository};

    /// A commit of `files` (name, content, mode).
    fn commit(repo: &Repository, files: &[(&str, &[u8], FileMode)]) -> git2::Oid {
        let mut tree = repo.treebuilder(None).unwrap();
        for (name, content, mode) in files {
            tree.insert(name, repo.blob(content).unwrap(), i32::from(*mode))
                .unwrap();
        }
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap()
    }

    #[test]
    fn a_patch_from_the_blobs_in_hand_is_the_tree_diffs_patch() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let text = |n: usize, edit: &str| -> Vec<u8> {
            (0..n)
                .map(|i| {
                    if i == n / 2 {
                        format!("{edit}\n")
                    } else {
                        format!("line {i}\n")
                    }
                })
                .collect::<String>()
                .into_bytes()
        };
        let (a1, a2) = (text(40, "old"), text(40, "new"));
        let b1 = b"no newline at the end".to_vec();
        let b2 = b"no newline at the end, changed".to_vec();
        let (bin1, bin2) = (b"\0\x01binary".to_vec(), b"\0\x02binary".to_vec());
        let c1 = commit(
            &repo,
            &[
                ("a.conf", &a1, FileMode::Blob),
                ("b.conf", &b1, FileMode::Blob),
                ("bin", &bin1, FileMode::Blob),
                ("exec.sh", &a1, FileMode::BlobExecutable),
                ("gone.conf", &a1, FileMode::Blob),
                ("made-exec.sh", &a1, FileMode::Blob),
                ("link", b"a.conf", FileMode::Link),
                ("same.conf", &a1, FileMode::Blob),
                ("quoted \"é\".conf", &a1, FileMode::Blob),
                ("empty.conf", b"", FileMode::Blob),
            ],
        );
        let c2 = commit(
            &repo,
            &[
                ("a.conf", &a2, FileMode::Blob),
                ("b.conf", &b2, FileMode::Blob),
                ("bin", &bin2, FileMode::Blob),
                ("exec.sh", &a2, FileMode::BlobExecutable),
                ("made-exec.sh", &a2, FileMode::BlobExecutable),
                ("new.conf", &a2, FileMode::Blob),
                ("link", b"b.conf", FileMode::Link),
                ("same.conf", &a1, FileMode::Blob),
                ("quoted \"é\".conf", &a2, FileMode::Blob),
                ("new-empty.conf", b"", FileMode::Blob),
            ],
        );
        let tree = |c| repo.find_commit(c).unwrap().tree().unwrap();
        let diff = repo.diff_tree_to_tree(Some(&tree(c1)), Some(&tree(c2)), None).unwrap();
        assert_eq!(diff.deltas().len(), 11, "every kind of change is in the diff");
        let mut from_blobs = 0;
        for idx in 0..diff.deltas().len() {
            let delta = diff.get_delta(idx).unwrap();
            let (old, new) = (
                super::blob(&repo, delta.old_file().id()).unwrap(),
                super::blob(&repo, delta.new_file().id()).unwrap(),
            );
            let ours = super::patch_of(&diff, idx, &delta, old.as_ref(), new.as_ref()).unwrap();
            let theirs = git2::Patch::from_diff(&diff, idx).unwrap();
            let plain_or_absent =
                |blob: Option<&git2::Blob<'_>>, f: git2::DiffFile<'_>| blob.is_none() || f.mode() == FileMode::Blob;
            let made_from_blobs = (old.is_some() || new.is_some())
                && plain_or_absent(old.as_ref(), delta.old_file())
                && plain_or_absent(new.as_ref(), delta.new_file());
            from_blobs += usize::from(made_from_blobs);
            let path = delta.new_file().path().unwrap().display().to_string();
            match (ours, theirs) {
                (Some(mut ours), Some(mut theirs)) => {
                    assert_eq!(
                        ours.delta().flags().is_binary(),
                        theirs.delta().flags().is_binary(),
                        "{path}"
                    );
                    if ours.delta().flags().is_binary() {
                        continue;
                    }
                    assert_eq!(ours.line_stats().unwrap(), theirs.line_stats().unwrap(), "{path}");
                    let raw = ours.to_buf().unwrap();
                    let raw = String::from_utf8_lossy(&raw);
                    // Made from the blobs, a path printed as it is is not given to libgit2
                    // (no attribute lookup), and the header is named afterwards.
                    let unnamed = ours.delta().new_file().path() == Some(std::path::Path::new(""));
                    assert_eq!(unnamed, raw.starts_with("diff --git a/ b/\n"), "{path}: {raw}");
                    assert_eq!(
                        unnamed,
                        made_from_blobs && super::printed_as_is(std::path::Path::new(&path)),
                        "{path}"
                    );
                    assert_eq!(
                        super::named(raw, &path),
                        String::from_utf8_lossy(&theirs.to_buf().unwrap()),
                        "{path}"
                    );
                }
                (Some(ours), None) => assert!(ours.delta().flags().is_binary(), "{path}: the tree diff made no patch"),
                (None, theirs) => assert!(theirs.is_none(), "{path}"),
            }
        }
        assert_eq!(
            from_blobs, 8,
            "a.conf, b.conf, bin, gone.conf, new.conf, the quoted path and both empty files are made from the blobs in hand"
        );
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(super::cut("héllo", 2), "h");
        assert_eq!(super::cut("hello", 10), "hello");
    }
}
