//! What a domain's files are at one commit (the manifest's entries: content hash, git
//! mode, metadata) and how two such states compare, file by file.

use super::*;

/// One file of a manifest: content hash, git mode and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// SHA-256 of the content (a symlink's: of its target text), lower-case hex.
    pub sha256: String,
    /// Git file mode: 0o100644, 0o100755 or 0o120000 (a symlink).
    pub mode: u32,
    /// Type, full mode, owner and group; `None` in a commit made before they were kept.
    pub meta: Option<FileMeta>,
}

impl ManifestEntry {
    /// Whether `other` is another state of the file: its content, git mode, or (when
    /// both are known) its type, mode, owner or group differ.
    pub fn differs(&self, other: &ManifestEntry) -> bool {
        self.sha256 != other.sha256
            || self.mode != other.mode
            || matches!((&self.meta, &other.meta), (Some(a), Some(b)) if !a.same_access(b))
    }
}

/// A file written into the object database, waiting for its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    /// The blob.
    pub id: Oid,
    /// Its size.
    pub len: usize,
}

/// A domain's files at one commit.
pub type Manifest = BTreeMap<RepoPath, ManifestEntry>;

/// One file's state change between a commit and its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// The path.
    pub path: RepoPath,
    /// What happened.
    pub kind: ChangeKind,
    /// Before (absent when added).
    pub old: Option<ManifestEntry>,
    /// After (absent when deleted).
    pub new: Option<ManifestEntry>,
    /// The change in the service's terms (empty for an unchanged file, and until
    /// [`summarize_changes`] tells it).
    pub summary: crate::summary::Summary,
}

impl FileRecord {
    /// The change of type, mode, owner or group in words ("mode 0600 → 0644"), when both
    /// sides carry metadata; a symlink's new target is content, told as "link → TARGET"
    /// by whoever holds it.
    pub fn metadata_changes(&self) -> Vec<String> {
        match (
            self.old.as_ref().and_then(|o| o.meta.as_ref()),
            self.new.as_ref().and_then(|n| n.meta.as_ref()),
        ) {
            (Some(o), Some(n)) => metadata::describe(o, n),
            _ => Vec::new(),
        }
    }
}

/// Tells each changed file's change in its service's terms, with its change of mode or
/// owner, from the stored forms of both versions (`old_blob`, `new_blob` find them);
/// `told` gives the content's summary of a file already summarized (by a hashing thread,
/// which held both versions).
pub fn summarize_changes(
    repo: &Repository,
    domain: Domain,
    records: &mut [FileRecord],
    old_blob: impl Fn(&RepoPath) -> Option<Oid>,
    new_blob: impl Fn(&RepoPath) -> Option<Oid>,
    told: impl Fn(&RepoPath) -> Option<crate::summary::Summary>,
) {
    let read = |id: Option<Oid>| id.and_then(|id| repo.find_blob(id).ok()).map(|b| b.content().to_vec());
    for r in records.iter_mut().filter(|r| r.kind != ChangeKind::Unchanged) {
        if r.old.is_none() || r.new.is_none() {
            // Added or removed whole: nothing is read back.
            r.summary = crate::summary::whole(r.path.as_str(), r.new.is_some());
            continue;
        }
        if let Some(s) = told(&r.path) {
            r.summary = s.with_words("metadata", &r.metadata_changes());
            continue;
        }
        let old = r.old.as_ref().and_then(|_| read(old_blob(&r.path)));
        let new = r.new.as_ref().and_then(|_| read(new_blob(&r.path)));
        let link = r.new.as_ref().is_some_and(|n| n.mode == metadata::GIT_SYMLINK);
        let mut words = r.metadata_changes();
        let summary = if link && r.old.is_some() && old != new {
            if let Some(target) = &new {
                words.push(metadata::describe_link(&String::from_utf8_lossy(target)));
            }
            crate::summary::Summary::default()
        } else {
            crate::summary::summarize(domain, r.path.as_str(), old.as_deref(), new.as_deref())
        };
        r.summary = summary.with_words("metadata", &words);
    }
}

/// Compares two manifests, in path order.
pub fn compare(old: &Manifest, new: &Manifest) -> Vec<FileRecord> {
    merge(old, new, true).0
}

/// [`compare`]'s changed files only (added, modified, deleted), and how many were
/// unchanged: a run over thousands of untouched files copies none of their entries.
pub fn changes(old: &Manifest, new: &Manifest) -> (Vec<FileRecord>, usize) {
    merge(old, new, false)
}

/// Both manifests walked side by side in path order (each is sorted): no lookups, no sort.
fn merge(old: &Manifest, new: &Manifest, keep_unchanged: bool) -> (Vec<FileRecord>, usize) {
    use std::cmp::Ordering;
    let record = |path: &RepoPath, kind, o: Option<&ManifestEntry>, n: Option<&ManifestEntry>| FileRecord {
        path: path.clone(),
        kind,
        old: o.cloned(),
        new: n.cloned(),
        summary: Default::default(),
    };
    let mut out = Vec::with_capacity(if keep_unchanged { new.len().max(old.len()) } else { 0 });
    let mut unchanged = 0;
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        let order = match (o.peek(), n.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((op, _)), Some((np, _))) => op.cmp(np),
        };
        match order {
            Ordering::Less => {
                let (path, entry) = o.next().expect("peeked");
                out.push(record(path, ChangeKind::Deleted, Some(entry), None));
            }
            Ordering::Greater => {
                let (path, entry) = n.next().expect("peeked");
                out.push(record(path, ChangeKind::Added, None, Some(entry)));
            }
            Ordering::Equal => {
                let ((path, before), (_, after)) = (o.next().expect("peeked"), n.next().expect("peeked"));
                if before.differs(after) {
                    out.push(record(path, ChangeKind::Modified, Some(before), Some(after)));
                } else {
                    unchanged += 1;
                    if keep_unchanged {
                        out.push(record(path, ChangeKind::Unchanged, Some(before), Some(after)));
                    }
                }
            }
        }
    }
    (out, unchanged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_finds_every_kind_of_change() {
        let e = |s: &str, m| ManifestEntry {
            sha256: s.to_owned(),
            mode: m,
            meta: None,
        };
        let with = |s: &str, mode: u32, uid: u32| ManifestEntry {
            meta: Some(FileMeta {
                kind: metadata::FileType::File,
                mode,
                uid,
                gid: 0,
                owner: uid.to_string().into(),
                group: "root".into(),
            }),
            ..e(s, 0o100644)
        };
        let p = |s: &str| s.parse::<RepoPath>().unwrap();
        let old: Manifest = [
            (p("a"), e("1", 0o100644)),
            (p("b"), e("2", 0o100644)),
            (p("c"), e("3", 0o100644)),
            (p("k"), with("5", 0o600, 101)),
            (p("o"), with("6", 0o640, 101)),
            (p("u"), e("7", 0o100644)),
        ]
        .into();
        let new: Manifest = [
            (p("a"), e("1", 0o100644)),
            (p("b"), e("2", 0o100755)),
            (p("d"), e("4", 0o100644)),
            (p("k"), with("5", 0o644, 101)),
            (p("o"), with("6", 0o640, 0)),
            // Metadata first recorded: not a change of the file.
            (p("u"), with("7", 0o644, 0)),
        ]
        .into();
        let kinds: Vec<_> = compare(&old, &new)
            .iter()
            .map(|r| (r.path.to_string(), r.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a".into(), ChangeKind::Unchanged),
                ("b".into(), ChangeKind::Modified),
                ("c".into(), ChangeKind::Deleted),
                ("d".into(), ChangeKind::Added),
                ("k".into(), ChangeKind::Modified),
                ("o".into(), ChangeKind::Modified),
                ("u".into(), ChangeKind::Unchanged)
            ]
        );
        // The changes alone: the same records without the unchanged ones, and their count.
        let (changed, unchanged) = changes(&old, &new);
        let all: Vec<FileRecord> = compare(&old, &new)
            .into_iter()
            .filter(|r| r.kind != ChangeKind::Unchanged)
            .collect();
        assert_eq!((changed, unchanged), (all, 2));
    }
}
