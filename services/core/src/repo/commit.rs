//! Domain commits: writing one (the staged files, deletions, the manifest and the
//! metadata file), and reading one back (its domain, run and every file's change) for the
//! audit trail.

use super::*;

/// The summaries of a commit's changed files, by path, as told when it was made.
pub type Summaries = BTreeMap<RepoPath, crate::summary::Summary>;

/// A backup commit read back from the repository.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    /// The commit.
    pub id: Oid,
    /// Its first parent.
    pub parent: Option<Oid>,
    /// Its domain (from the trailer).
    pub domain: Domain,
    /// The run or task that made it (from the trailer).
    pub run_id: Option<uuid::Uuid>,
    /// The full message.
    pub message: String,
    /// The commit time.
    pub time: chrono::DateTime<chrono::Utc>,
    /// Every file of the domain, changed or not, plus deletions (or, from
    /// [`WorkingCopy::commit_changes`], the changed ones only).
    pub files: Vec<FileRecord>,
    /// The blob id of the domain's manifest in this commit.
    pub manifest: Option<Oid>,
    /// The blob id of the domain's manifest in the parent.
    pub parent_manifest: Option<Oid>,
}

impl WorkingCopy {
    /// Writes a commit, signed when a signing key is configured (an SSH signature in its
    /// `gpgsig` header, as `git commit -S` with `gpg.format=ssh` writes it), and with
    /// `on_tip` makes it this working copy's tip: the branch moves to it at
    /// [`WorkingCopy::publish_commits`].
    pub(super) fn write_commit(
        &self,
        on_tip: bool,
        author: &Signature<'_>,
        committer: &Signature<'_>,
        message: &str,
        tree: &git2::Tree<'_>,
        parents: &[&Commit<'_>],
    ) -> Result<Oid, git2::Error> {
        let id = match &self.signer {
            None => self.repo.commit(None, author, committer, message, tree, parents)?,
            Some(signer) => {
                let content = self
                    .repo
                    .commit_create_buffer(author, committer, message, tree, parents)?;
                let content = content
                    .as_str()
                    .map_err(|_| git2::Error::from_str("the commit's content is not UTF-8"))?;
                let signature = signer.sign(content.as_bytes()).map_err(|e| git2::Error::from_str(&e))?;
                self.repo.commit_signed(content, &signature, None)?
            }
        };
        if on_tip {
            // The branch's commit when the first unpublished one was made: its parent.
            let base = match self.tip.get() {
                Some((_, base)) => base,
                None => parents.first().map(|p| p.id()),
            };
            self.tip.set(Some((id, base)));
        }
        Ok(id)
    }

    /// Whether `id` is signed by this server's signing key: `Ok(None)` when no key is
    /// configured (nothing to check), `Ok(Some(Err(why)))` when it is unsigned or its
    /// signature does not hold.
    pub fn verify_commit(&self, id: Oid) -> Result<Option<Result<(), String>>, RepoError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        match self.repo.extract_signature(&id, None) {
            Ok((signature, content)) => Ok(Some(signer.verify(&content, &signature))),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(Some(Err("it is not signed".to_owned()))),
            Err(e) => Err(e.into()),
        }
    }

    /// A domain's manifest at a commit (empty if the commit has none).
    pub fn manifest_at(&self, commit: Option<Oid>, domain: Domain) -> Result<Manifest, RepoError> {
        let Some(commit) = commit else {
            return Ok(Manifest::new());
        };
        let tree = self.repo.find_commit(commit)?.tree()?;
        read_manifest(&self.repo, &tree, domain)
    }

    /// How many files a domain has at a commit (the manifest's lines and the metadata's
    /// symlinks; cheap).
    pub fn manifest_len(&self, commit: Option<Oid>, domain: Domain) -> Result<usize, RepoError> {
        let Some(commit) = commit else { return Ok(0) };
        let tree = self.repo.find_commit(commit)?.tree()?;
        let files = match tree.get_path(Path::new(&manifest_path(domain))) {
            Ok(e) => self
                .repo
                .find_blob(e.id())?
                .content()
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            Err(e) if e.code() == ErrorCode::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        let links = match tree.get_path(Path::new(&metadata::meta_path(domain))) {
            Ok(e) => String::from_utf8_lossy(self.repo.find_blob(e.id())?.content())
                .lines()
                .filter(|l| l.split(' ').nth(1) == Some(metadata::FileType::Symlink.as_str()))
                .count(),
            Err(_) => 0,
        };
        Ok(files + links)
    }

    /// Writes a file's new content into the work tree and the object database at once,
    /// so a run never holds the contents of all changed files in memory.
    pub fn stage_file(&self, path: &RepoPath, content: &[u8], mode: u32) -> Result<Staged, RepoError> {
        stage_into(&self.repo, path, content, mode)
    }

    /// Commits a domain: the staged files, the deletions and the manifest.
    pub fn commit_domain(
        &self,
        domain: Domain,
        manifest: &Manifest,
        contents: &BTreeMap<RepoPath, Staged>,
        deleted: &[RepoPath],
        message: &str,
        same_as_parent: bool,
    ) -> Result<Oid, RepoError> {
        self.write_domain_commit(domain, manifest, contents, deleted, message, same_as_parent)
            .map_err(|e| {
                e.with_os_cause(self.repo.path(), 0, || {
                    format!("committing domain {domain} in {}", self.repo.path().display())
                })
            })
    }

    fn write_domain_commit(
        &self,
        domain: Domain,
        manifest: &Manifest,
        contents: &BTreeMap<RepoPath, Staged>,
        deleted: &[RepoPath],
        message: &str,
        same_as_parent: bool,
    ) -> Result<Oid, RepoError> {
        let sig = Signature::now(&self.git.user_name, &self.git.user_email)?;
        let parent = self.head_commit()?;
        let parents: Vec<&Commit<'_>> = parent.iter().collect();
        // The caller knows the parent's tree holds exactly this manifest (this process
        // rendered it into those blobs): a no-change commit reuses the tree unrendered.
        if let Some(p) = &parent
            && same_as_parent
            && contents.is_empty()
            && deleted.is_empty()
        {
            return Ok(self.write_commit(true, &sig, &sig, message, &p.tree()?, &parents)?);
        }
        self.unmark_clean()?;
        let workdir = self
            .repo
            .workdir()
            .ok_or_else(|| git2::Error::from_str("bare working copy"))?
            .to_path_buf();
        let manifest_path = manifest_path(domain);
        let manifest_text = render_manifest(manifest);
        let meta_path = metadata::meta_path(domain);
        let meta_text = render_meta(manifest);
        // Nothing changed: the commit reuses its parent's tree (the index and the work tree
        // already match it: the run started by resetting them to HEAD).
        if let Some(p) = &parent
            && contents.is_empty()
            && deleted.is_empty()
        {
            let tree = p.tree()?;
            let holds = |path: &str, text: &str| {
                tree.get_path(Path::new(path))
                    .ok()
                    .is_some_and(|e| Oid::hash_object(git2::ObjectType::Blob, text.as_bytes()).ok() == Some(e.id()))
            };
            if holds(&manifest_path, &manifest_text) && holds(&meta_path, &meta_text) {
                return Ok(self.write_commit(true, &sig, &sig, message, &tree, &parents)?);
            }
        }
        let mut index = self.repo.index()?;
        for (path, staged) in contents {
            let mode = manifest.get(path).map(|e| e.mode).unwrap_or(0o100644);
            let mut entry = index_entry(path.as_str(), mode, staged.len);
            entry.id = staged.id;
            index.add(&entry)?;
        }
        for path in deleted {
            let abs = workdir.join(path.as_str());
            match std::fs::remove_file(&abs) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("removing {}", abs.display()))(e)),
            }
            index.remove_path(Path::new(path.as_str()))?;
        }
        write_work_file(&workdir, &manifest_path, manifest_text.as_bytes(), 0o100644)?;
        index.add_frombuffer(
            &index_entry(&manifest_path, 0o100644, manifest_text.len()),
            manifest_text.as_bytes(),
        )?;
        write_work_file(&workdir, &meta_path, meta_text.as_bytes(), 0o100644)?;
        index.add_frombuffer(
            &index_entry(&meta_path, 0o100644, meta_text.len()),
            meta_text.as_bytes(),
        )?;
        index.write()?;
        let tree_id = index.write_tree()?;
        let tree = self.repo.find_tree(tree_id)?;
        let id = self.write_commit(true, &sig, &sig, message, &tree, &parents)?;
        Ok(id)
    }

    /// Reads a backup commit: its domain, run and every file's change. `None` for a
    /// commit without our trailers (made by someone else).
    pub fn commit_info(&self, id: Oid, known: Option<&Summaries>) -> Result<Option<CommitInfo>, RepoError> {
        let commit = self.repo.find_commit(id)?;
        let message = commit.message().unwrap_or_default().to_owned();
        let Some(domain) = trailer(&message, TRAILER_DOMAIN).and_then(|d| d.parse::<Domain>().ok()) else {
            return Ok(None);
        };
        let run_id = trailer(&message, TRAILER_RUN).and_then(|r| r.parse().ok());
        let parent = commit.parent_ids().next();
        let tree = commit.tree()?;
        let new = read_manifest(&self.repo, &tree, domain)?;
        let old = self.manifest_at(parent, domain)?;
        let time = chrono::DateTime::from_timestamp(commit.time().seconds(), 0).unwrap_or_default();
        let (manifest, parent_manifest) = self.manifest_blobs(&tree, parent, domain)?;
        let mut files = compare(&old, &new);
        self.summarize(domain, parent, &tree, &mut files, known)?;
        Ok(Some(CommitInfo {
            id,
            parent,
            domain,
            run_id,
            message,
            time,
            files,
            manifest,
            parent_manifest,
        }))
    }

    /// Each changed file's change in its service's terms, between the commit `parent` and
    /// `tree` (what the commit records in the audit trail).
    fn summarize(
        &self,
        domain: Domain,
        parent: Option<Oid>,
        tree: &Tree<'_>,
        files: &mut [FileRecord],
        known: Option<&Summaries>,
    ) -> Result<(), RepoError> {
        if let Some(known) = known {
            // Told when the commit was made: nothing to read again. A file added or removed
            // whole is told without reading it, so it is not kept among the told.
            for f in files.iter_mut().filter(|f| f.kind != ChangeKind::Unchanged) {
                f.summary = match known.get(&f.path) {
                    Some(s) => s.clone(),
                    None if f.old.is_none() || f.new.is_none() => {
                        crate::summary::whole(f.path.as_str(), f.new.is_some())
                    }
                    None => Default::default(),
                };
            }
            return Ok(());
        }
        let parent_tree = match parent {
            Some(p) => Some(self.repo.find_commit(p)?.tree()?),
            None => None,
        };
        let blob = |t: Option<&Tree<'_>>, path: &RepoPath| t?.get_path(Path::new(path.as_str())).ok().map(|e| e.id());
        summarize_changes(
            &self.repo,
            domain,
            files,
            |p| blob(parent_tree.as_ref(), p),
            |p| blob(Some(tree), p),
            |_| None,
        );
        Ok(())
    }

    /// The blob ids of the domain's manifest in `tree` and in the commit `parent`.
    fn manifest_blobs(
        &self,
        tree: &git2::Tree,
        parent: Option<Oid>,
        domain: Domain,
    ) -> Result<(Option<Oid>, Option<Oid>), RepoError> {
        let (path, meta) = (manifest_path(domain), metadata::meta_path(domain));
        // The manifest's blob, or, with metadata, one id for the pair: a commit that
        // changed only an owner or a mode holds another state of the domain.
        let blob = |t: &git2::Tree| {
            let manifest = t.get_path(Path::new(&path)).ok().map(|e| e.id())?;
            match t.get_path(Path::new(&meta)) {
                Ok(m) => Oid::hash_object(git2::ObjectType::Blob, format!("{manifest} {}", m.id()).as_bytes()).ok(),
                Err(_) => Some(manifest),
            }
        };
        let parent_blob = match parent {
            Some(p) => blob(&self.repo.find_commit(p)?.tree()?),
            None => None,
        };
        Ok((blob(tree), parent_blob))
    }

    /// A domain commit's information with only its changed files (added, modified,
    /// deleted): when the domain's manifest is the same object as in the parent (a
    /// no-change commit), nothing is read but the two trees. `None` for a commit that is
    /// not a domain commit.
    pub fn commit_changes(&self, id: Oid, known: Option<&Summaries>) -> Result<Option<CommitInfo>, RepoError> {
        let commit = self.repo.find_commit(id)?;
        let message = commit.message().unwrap_or_default().to_owned();
        let Some(domain) = trailer(&message, TRAILER_DOMAIN).and_then(|d| d.parse::<Domain>().ok()) else {
            return Ok(None);
        };
        let parent = commit.parent_ids().next();
        let tree = commit.tree()?;
        let (new_blob, old_blob) = self.manifest_blobs(&tree, parent, domain)?;
        let files = if new_blob == old_blob {
            Vec::new()
        } else {
            let new = read_manifest(&self.repo, &tree, domain)?;
            let old = self.manifest_at(parent, domain)?;
            let (mut files, _) = changes(&old, &new);
            self.summarize(domain, parent, &tree, &mut files, known)?;
            files
        };
        Ok(Some(CommitInfo {
            id,
            parent,
            domain,
            run_id: trailer(&message, TRAILER_RUN).and_then(|r| r.parse().ok()),
            message,
            time: chrono::DateTime::from_timestamp(commit.time().seconds(), 0).unwrap_or_default(),
            files,
            manifest: new_blob,
            parent_manifest: old_blob,
        }))
    }

    /// Commits reachable from HEAD, newest first, until `known` says one is already
    /// recorded (or `limit` is reached).
    pub fn unrecorded_commits(&self, mut known: impl FnMut(Oid) -> bool, limit: usize) -> Result<Vec<Oid>, RepoError> {
        let Some(head) = self.head()? else {
            return Ok(Vec::new());
        };
        let mut walk = self.repo.revwalk()?;
        walk.push(head)?;
        walk.simplify_first_parent()?;
        let mut out = Vec::new();
        for id in walk {
            let id = id?;
            if known(id) || out.len() >= limit {
                break;
            }
            out.push(id);
        }
        Ok(out)
    }
}

/// The value of a `Key: value` trailer in the last paragraph.
pub fn trailer<'m>(message: &'m str, key: &str) -> Option<&'m str> {
    message
        .lines()
        .rev()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
}

pub(super) fn index_entry(path: &str, mode: u32, len: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(len).unwrap_or(u32::MAX),
        id: Oid::ZERO_SHA1,
        flags: u16::try_from(path.len()).unwrap_or(0xfff).min(0xfff),
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_read_from_the_last_paragraph() {
        let m = "config backup 2026-11-26 dns: 2 files changed\n\nM a 1→2\n\nConfig-Backup-Domain: dns\nConfig-Backup-Run: x\n";
        assert_eq!(trailer(m, TRAILER_DOMAIN), Some("dns"));
        assert_eq!(trailer(m, TRAILER_RUN), Some("x"));
        assert_eq!(trailer("no trailers", TRAILER_DOMAIN), None);
    }
}
