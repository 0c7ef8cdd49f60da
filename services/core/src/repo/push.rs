//! Reaching the remote: fetch, rebase of our unpushed commits onto what it has, and the
//! verified push (never forced; the branch read back must equal our head).

use super::*;

/// How far back [`line_to`] looks: more commits than a run of every domain
/// makes, with room for runs whose pushes failed.
const LINE_STEPS: usize = 256;

/// Where one commit lies on another's line of first parents.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// This many commits back (0: the same commit).
    At(usize),
    /// Not on it: the line ends (at the root) without it and has no merge.
    Never,
    /// Not within [`LINE_STEPS`] commits, or past a merge: ask git's walk.
    Unknown,
}

/// Where `ancestor` lies on `head`'s line of first parents, followed back at most
/// [`LINE_STEPS`] commits while every commit has one parent: a run's commits are a
/// line on top of what it last pushed, so the remote's head is found in a few steps.
/// Git's own reachability walk orders commits by their time, and one run's commits
/// share a second: between them it wandered into the history before it knew (6 % of
/// the CPU of a no-change run of the benchmark's small site).
fn line_to(repo: &Repository, head: Oid, ancestor: Oid) -> Result<Line, git2::Error> {
    let mut at = head;
    for steps in 0..LINE_STEPS {
        if at == ancestor {
            return Ok(Line::At(steps));
        }
        let commit = repo.find_commit(at)?;
        match commit.parent_count() {
            0 => return Ok(Line::Never),
            1 => at = commit.parent_id(0)?,
            _ => return Ok(Line::Unknown),
        }
    }
    Ok(Line::Unknown)
}

/// Whether `head` is `ancestor` or descends from it.
fn descends_from(repo: &Repository, head: Oid, ancestor: Oid) -> Result<bool, git2::Error> {
    match line_to(repo, head, ancestor)? {
        Line::At(_) => Ok(true),
        Line::Never => Ok(false),
        Line::Unknown => repo.graph_descendant_of(head, ancestor),
    }
}

impl WorkingCopy {
    /// Makes the packs this repository pushes without delta search: every object is sent
    /// whole (zlib-compressed). libgit2 cannot reuse deltas nor make thin packs, so its
    /// search only ever pairs the new objects of one push with each other: different
    /// files, which rarely delta (the benchmark's first push came out *larger* with it),
    /// at about a third of a first backup's time and most of its memory. Deltas between
    /// versions of a file, the ones that pay, are made where the history lives: by the
    /// remote's repack (`git gc --auto` after a push, by receive-pack or, for a local
    /// remote, the geometric roll-ups of [`crate::maintenance`]).
    ///
    /// libgit2 (1.9, `packbuilder_config`) reads `pack.deltaCacheSize` both as the delta
    /// cache's size and as the size above which an object is never deltified; 1 byte sets
    /// both to "nothing". Were libgit2 to read the threshold from its proper key, this
    /// would still bound the delta cache (its default is 256 MiB), and
    /// `pushed_packs_hold_no_deltas` fails.
    fn push_without_delta_search(&self) -> Result<(), RepoError> {
        const NOTHING: i64 = 1;
        let mut config = self.repo.config()?.open_level(git2::ConfigLevel::Local)?;
        if config.get_i64("pack.deltaCacheSize").ok() != Some(NOTHING) {
            config.set_i64("pack.deltaCacheSize", NOTHING)?;
        }
        Ok(())
    }

    /// Local commits the remote-tracking branch does not have.
    pub fn unpushed(&self) -> Result<usize, RepoError> {
        let Some(head) = self.head()? else {
            return Ok(0);
        };
        let tracking = self.tracking_head()?;
        if let Some(tracking) = tracking
            && let Line::At(n) = line_to(&self.repo, head, tracking)?
        {
            return Ok(n);
        }
        let mut walk = self.repo.revwalk()?;
        walk.push(head)?;
        if let Some(tracking) = tracking {
            walk.hide(tracking)?;
        }
        Ok(walk.count())
    }

    fn tracking_head(&self) -> Result<Option<Oid>, RepoError> {
        match self
            .repo
            .find_reference(&format!("refs/remotes/origin/{}", self.git.branch))
        {
            Ok(r) => Ok(r.target()),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Fetches the remote branch; returns its head (None when the remote has no such branch).
    fn fetch(&self, session: &Session) -> Result<Option<Oid>, PushError> {
        let remote_name = crate::remote::redact_url(&self.git.remote);
        let transport = |e: git2::Error| PushError::Transport {
            remote: remote_name.clone(),
            message: session.explain(&e),
        };
        let mut remote = self.repo.find_remote("origin").map_err(transport)?;
        let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}", b = self.git.branch);
        remote
            .fetch(&[&refspec], Some(&mut session.fetch_options()), None)
            .map_err(transport)?;
        let branch_ref = format!("refs/heads/{}", self.git.branch);
        let heads = remote.list().map_err(transport)?;
        Ok(heads.iter().find(|h| h.name() == branch_ref).map(|h| h.oid()))
    }

    /// Moves the branch (and work tree) to `target`.
    fn move_branch(&self, target: Oid, why: &str) -> Result<(), git2::Error> {
        self.repo
            .reference(&format!("refs/heads/{}", self.git.branch), target, true, why)?;
        let commit = self.repo.find_commit(target)?;
        self.repo.reset(commit.as_object(), git2::ResetType::Hard, None)
    }

    /// Replays our commits since the merge base onto `onto`. None if one conflicts
    /// (then nothing has moved).
    fn rebase_onto(&self, head: Oid, onto: Oid) -> Result<Option<Rewrites>, git2::Error> {
        let base = self.repo.merge_base(head, onto)?;
        let mut walk = self.repo.revwalk()?;
        walk.push(head)?;
        walk.hide(base)?;
        walk.simplify_first_parent()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
        let ours: Vec<Oid> = walk.collect::<Result<_, _>>()?;
        let mut tip = self.repo.find_commit(onto)?;
        let mut map = Vec::with_capacity(ours.len());
        for id in ours {
            let commit = self.repo.find_commit(id)?;
            let mut index = self.repo.cherrypick_commit(&commit, &tip, 0, None)?;
            if index.has_conflicts() {
                return Ok(None);
            }
            let tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
            let message = commit.message_raw().unwrap_or_default();
            let new = self.write_commit(false, &commit.author(), &commit.committer(), message, &tree, &[&tip])?;
            map.push((id, new, tip.id()));
            tip = self.repo.find_commit(new)?;
        }
        self.move_branch(tip.id(), "rebase backup commits onto the remote")?;
        Ok(Some(map))
    }

    /// Sends the branch to the remote. `Ok(false)`: the remote refused it as not a
    /// fast-forward (it holds commits we lack), and nothing was sent.
    fn send_branch(&self, session: &Session, branch_ref: &str) -> Result<bool, PushError> {
        let transport = |e: git2::Error| PushError::Transport {
            remote: crate::remote::redact_url(&self.git.remote),
            message: session.explain(&e),
        };
        let mut remote = self.repo.find_remote("origin").map_err(transport)?;
        let rejected: RefCell<Option<(String, String)>> = RefCell::new(None);
        {
            let mut callbacks = session.callbacks();
            callbacks.push_update_reference(|refname, status| {
                if let Some(reason) = status {
                    *rejected.borrow_mut() = Some((refname.to_owned(), reason.to_owned()));
                }
                Ok(())
            });
            if let Err(e) = self.push_without_delta_search() {
                tracing::warn!(error = %e, "could not turn the push's delta search off; pushing with libgit2's default");
            }
            let mut opts = git2::PushOptions::new();
            opts.remote_callbacks(callbacks);
            match remote.push(&[format!("{branch_ref}:{branch_ref}")], Some(&mut opts)) {
                Err(e) if e.code() == ErrorCode::NotFastForward => return Ok(false),
                Err(e) => return Err(transport(e)),
                Ok(()) => {}
            }
        }
        match rejected.into_inner() {
            Some((refname, reason)) => Err(PushError::Rejected { refname, reason }),
            None => Ok(true),
        }
    }

    /// Brings the remote's commits in: fetches the branch; when the remote has commits we
    /// lack, fast-forwards to them (nothing of ours unpushed) or rebases our unpushed
    /// commits on top (when they apply cleanly). Conflicts: [`PushError::Diverged`], and
    /// nothing moves. Never rewrites the remote.
    pub fn sync(&self) -> Result<SyncResult, PushError> {
        self.sync_with(&Session::new(&self.git))
    }

    fn sync_with(&self, session: &Session) -> Result<SyncResult, PushError> {
        let local = |e: git2::Error| PushError::Local(e.message().to_owned());
        let mut result = SyncResult::default();
        let Some(remote_head) = self.fetch(session)? else {
            return Ok(result);
        };
        let Some(head) = self.head().map_err(|e| PushError::Local(e.to_string()))? else {
            // A fresh working copy of a non-empty remote: take it as it is.
            self.move_branch(remote_head, "adopt the remote").map_err(local)?;
            return Ok(result);
        };
        if descends_from(&self.repo, head, remote_head).map_err(local)? {
            return Ok(result);
        }
        result.foreign_commits = self.repo.graph_ahead_behind(head, remote_head).map_err(local)?.1;
        if self.repo.graph_descendant_of(remote_head, head).map_err(local)? {
            self.move_branch(remote_head, "fast-forward to the remote")
                .map_err(local)?;
            return Ok(result);
        }
        match self.rebase_onto(head, remote_head).map_err(local)? {
            Some(map) => {
                result.rewritten = map;
                Ok(result)
            }
            None => Err(PushError::Diverged {
                branch: self.git.branch.clone(),
                remote: remote_head.to_string(),
                unpushed: self.repo.graph_ahead_behind(head, remote_head).map_err(local)?.0,
            }),
        }
    }

    /// Pushes the branch, checks the per-reference result and reads the remote branch
    /// back. Never forces. The run brought the remote's commits in before committing
    /// ([`WorkingCopy::sync`]), so the branch is sent at once: only when the remote
    /// refuses it as not a fast-forward (someone pushed since) are its commits brought
    /// in again and the branch sent once more. A fetch saved on every run is a
    /// connection saved (an SSH handshake, on a remote reached over SSH).
    pub fn push(&self) -> Result<Option<PushResult>, PushError> {
        let session = Session::new(&self.git);
        let remote_name = crate::remote::redact_url(&self.git.remote);
        let transport = |e: git2::Error| PushError::Transport {
            remote: remote_name.clone(),
            message: session.explain(&e),
        };
        let local = |e: git2::Error| PushError::Local(e.message().to_owned());
        self.publish_commits().map_err(|e| PushError::Local(e.to_string()))?;
        if self.head().map_err(|e| PushError::Local(e.to_string()))?.is_none() {
            return Ok(None);
        }
        let branch_ref = format!("refs/heads/{}", self.git.branch);
        let mut synced = SyncResult::default();
        if !self.send_branch(&session, &branch_ref)? {
            synced = self.sync_with(&session)?;
            if !self.send_branch(&session, &branch_ref)? {
                return Err(PushError::Rejected {
                    refname: branch_ref,
                    reason: "not a fast-forward: the remote moved again while we pushed".to_owned(),
                });
            }
        }
        let SyncResult {
            rewritten,
            foreign_commits,
        } = synced;
        let head = self
            .head()
            .map_err(|e| PushError::Local(e.to_string()))?
            .ok_or_else(|| PushError::Local("no head".into()))?;
        let mut remote = self.repo.find_remote("origin").map_err(transport)?;
        // Read the remote branch back.
        let remote_head = {
            let conn = remote
                .connect_auth(git2::Direction::Fetch, Some(session.callbacks()), None)
                .map_err(transport)?;
            let heads = conn.list().map_err(transport)?;
            heads.iter().find(|h| h.name() == branch_ref).map(|h| h.oid())
        };
        if remote_head != Some(head) {
            return Err(PushError::Unverified {
                branch: self.git.branch.clone(),
                remote: remote_head
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "nothing".to_owned()),
                local: head.to_string(),
            });
        }
        // libgit2 moves the remote-tracking branch after a push it made; written again only
        // where it did not (a lock file, a rename and a reflog line saved on every run).
        if self.tracking_head().map_err(|e| PushError::Local(e.to_string()))? != Some(head) {
            self.repo
                .reference(
                    &format!("refs/remotes/origin/{}", self.git.branch),
                    head,
                    true,
                    "push verified",
                )
                .map_err(local)?;
        }
        Ok(Some(PushResult {
            remote_head: head,
            rewritten,
            foreign_commits,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit of an empty tree on `parents`, every one in the same second.
    fn commit(repo: &git2::Repository, n: i64, parents: &[Oid]) -> Oid {
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        // As one run's commits are.
        let sig = git2::Signature::new("t", "t@example.org", &git2::Time::new(1_700_000_000, 0)).unwrap();
        let parents: Vec<git2::Commit<'_>> = parents.iter().map(|p| repo.find_commit(*p).unwrap()).collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(None, &sig, &sig, &format!("c{n}"), &tree, &parents)
            .unwrap()
    }

    /// A commit on `parent` (or the branch's first) whose tree is `parent`'s with `file`
    /// added, written in `repo` without moving any reference.
    fn commit_adding(repo: &git2::Repository, parent: Option<Oid>, file: &str, message: &str) -> Oid {
        let parent = parent.map(|p| repo.find_commit(p).unwrap());
        let base = parent.as_ref().map(|p| p.tree().unwrap());
        let mut tree = repo.treebuilder(base.as_ref()).unwrap();
        let blob = repo.blob(format!("{file}\n").as_bytes()).unwrap();
        tree.insert(file, blob, 0o100644).unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repo.commit(None, &sig, &sig, message, &tree, &parents).unwrap()
    }

    #[test]
    fn a_remote_that_moved_after_the_runs_sync_keeps_its_commit_and_gets_ours_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let git = super::super::tests::settings(dir.path());
        ensure_bare_remote(std::path::Path::new(&git.remote), &git.branch).unwrap();
        let wc = WorkingCopy::open(&git).unwrap();
        let branch = format!("refs/heads/{}", git.branch);
        let first = commit_adding(wc.repository(), None, "first.conf", "first");
        wc.repository().reference(&branch, first, true, "test").unwrap();
        assert_eq!(wc.push().unwrap().unwrap().remote_head, first);
        // The run synced; then, before its push, someone pushes a commit of their own.
        let remote = git2::Repository::open_bare(&git.remote).unwrap();
        let theirs = commit_adding(&remote, Some(first), "theirs.conf", "theirs");
        remote.reference(&branch, theirs, true, "someone else").unwrap();
        let ours = commit_adding(wc.repository(), Some(first), "ours.conf", "ours");
        wc.repository().reference(&branch, ours, true, "test").unwrap();

        // The branch is refused as not a fast-forward, their commit brought in, ours
        // rebased on top of it and sent again: nothing of theirs is overwritten.
        let pushed = wc.push().unwrap().unwrap();
        assert_eq!(pushed.foreign_commits, 1);
        assert_eq!(pushed.rewritten.len(), 1);
        let (old, new, parent) = pushed.rewritten[0];
        assert_eq!((old, parent), (ours, theirs));
        assert_eq!(pushed.remote_head, new);
        let head = remote.find_reference(&branch).unwrap().target().unwrap();
        assert_eq!(head, new);
        let tree = remote.find_commit(head).unwrap().tree().unwrap();
        for file in ["first.conf", "theirs.conf", "ours.conf"] {
            assert!(tree.get_name(file).is_some(), "{file} is on the remote");
        }
        assert_eq!(wc.unpushed().unwrap(), 0);
    }

    #[test]
    fn the_line_of_first_parents_answers_as_git_does() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        // root - a1 - a2 - a3 - merge - m1, with b1 - b2 on root merged in; and c1 on a1.
        let root = commit(&repo, 0, &[]);
        let a1 = commit(&repo, 1, &[root]);
        let a2 = commit(&repo, 2, &[a1]);
        let a3 = commit(&repo, 3, &[a2]);
        let b1 = commit(&repo, 4, &[root]);
        let b2 = commit(&repo, 5, &[b1]);
        let merge = commit(&repo, 6, &[a3, b2]);
        let m1 = commit(&repo, 7, &[merge]);
        let c1 = commit(&repo, 8, &[a1]);
        // A long line, longer than the steps followed.
        let mut long = vec![a3];
        for n in 0..(LINE_STEPS + 3) as i64 {
            long.push(commit(&repo, 100 + n, &[*long.last().unwrap()]));
        }
        let tip = *long.last().unwrap();
        assert_eq!(line_to(&repo, a3, a3).unwrap(), Line::At(0));
        assert_eq!(line_to(&repo, a3, a1).unwrap(), Line::At(2));
        assert_eq!(line_to(&repo, a3, c1).unwrap(), Line::Never);
        assert_eq!(line_to(&repo, m1, b1).unwrap(), Line::Unknown);
        assert_eq!(line_to(&repo, tip, a3).unwrap(), Line::Unknown);
        let all = [root, a1, a2, a3, b1, b2, merge, m1, c1, tip];
        for &head in &all {
            for &ancestor in &all {
                let git = head == ancestor || repo.graph_descendant_of(head, ancestor).unwrap();
                assert_eq!(
                    descends_from(&repo, head, ancestor).unwrap(),
                    git,
                    "{head} from {ancestor}"
                );
            }
        }
    }
}
