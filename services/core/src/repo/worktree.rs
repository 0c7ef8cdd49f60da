//! The index and the work tree against the branch: the reset a run starts with (an
//! index marked clean for this HEAD is trusted unread), the reset after a failed domain,
//! the clean mark around writes made in place, and the work tree put back after a
//! failed domain.

use super::*;

impl WorkingCopy {
    /// Puts the index (and, if it had drifted, the work tree) back to HEAD, dropping
    /// anything a crashed run staged but did not commit, or a failed step of this working
    /// copy staged in memory (the index is read again from its file).
    pub fn reset_to_head(&self) -> Result<(), RepoError> {
        self.reset(false)
    }

    /// [`WorkingCopy::reset_to_head`] for a working copy just opened, which holds nothing
    /// in memory: an index file the last run marked clean for this HEAD is trusted
    /// without being read (reading and checking the index was a fifth of a no-change
    /// run at 4,000 files).
    pub fn reset_opened_to_head(&self) -> Result<(), RepoError> {
        self.reset(true)
    }

    fn reset(&self, opened: bool) -> Result<(), RepoError> {
        // The branch is what a reset puts the index back to (a hard reset moves it).
        self.publish_commits()?;
        let head = self.head_commit()?;
        // The index file is byte for byte the one a run left matching this HEAD.
        let marked = head
            .as_ref()
            .is_some_and(|h| self.clean_mark().is_some_and(|m| m == (h.id(), self.index_checksum())));
        if opened && marked {
            return Ok(());
        }
        let mut index = self.repo.index()?;
        index.read(true)?;
        match head {
            Some(head) => {
                // No need to rebuild the index's trees to compare them (10 ms at 4,000 files).
                if marked {
                    return Ok(());
                }
                let tree = head.tree()?;
                let drifted = index.write_tree().map(|t| t != tree.id()).unwrap_or(true);
                if drifted {
                    tracing::warn!(dir = %self.git.working_dir.display(), "working copy drifted from HEAD; resetting it");
                    self.repo.reset(head.as_object(), git2::ResetType::Hard, None)?;
                }
                if opened {
                    // No mark: the last run may have stopped while writing the work tree in
                    // place (a torn or stray file); it is put back to HEAD.
                    self.restore_work_tree()?;
                }
            }
            None => {
                if !index.is_empty() {
                    index.clear()?;
                    index.write()?;
                }
            }
        }
        Ok(())
    }

    /// Notes that the index matches HEAD now (its checksum trailer and HEAD), so the next
    /// [`WorkingCopy::reset_to_head`] can trust it unread while neither moves. Any write
    /// to the index (a stopped run's partial staging) changes its checksum.
    pub fn mark_clean(&self) {
        let Ok(Some(head)) = self.head() else { return };
        let Some(sum) = self.index_checksum() else { return };
        let path = self.clean_mark_path();
        let text = format!("{head} {}\n", hex::encode(sum));
        if let Err(e) = path
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|_| std::fs::write(&path, text))
        {
            tracing::debug!(error = %e, "could not write the clean-index mark; the next run checks the index");
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Called before a run's first write into the work tree, which is made in place
    /// ([`crate::fs::overwrite_work_file`]): the clean mark goes first, so a run stopped
    /// from here on leaves the next one to check the index and put the work tree back to
    /// HEAD ([`WorkingCopy::reset_opened_to_head`]). [`WorkingCopy::mark_clean`] marks it
    /// again at the run's end.
    pub fn unmark_clean(&self) -> Result<(), RepoError> {
        let path = self.clean_mark_path();
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err(format!("removing {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }

    fn clean_mark_path(&self) -> PathBuf {
        self.repo.path().join("config-backup").join("clean-index")
    }

    fn clean_mark(&self) -> Option<(Oid, Option<Vec<u8>>)> {
        let text = std::fs::read_to_string(self.clean_mark_path()).ok()?;
        let (head, sum) = text.trim().split_once(' ')?;
        Some((Oid::from_str(head).ok()?, hex::decode(sum).ok()))
    }

    /// The index file's trailing SHA-1 (over its whole content).
    fn index_checksum(&self) -> Option<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(self.repo.path().join("index")).ok()?;
        f.seek(SeekFrom::End(-20)).ok()?;
        let mut sum = vec![0u8; 20];
        f.read_exact(&mut sum).ok()?;
        Some(sum)
    }

    /// After a domain failed: the work tree as at HEAD again, the files it wrote that
    /// HEAD does not have removed (a full disk leaves a partly written file behind). The
    /// objects it wrote are unreferenced and left to `git gc`.
    pub fn restore_work_tree(&self) -> Result<(), RepoError> {
        self.publish_commits()?;
        if self.head()?.is_none() {
            return Ok(());
        }
        let mut opts = git2::build::CheckoutBuilder::new();
        opts.force().remove_untracked(true);
        self.repo.checkout_head(Some(&mut opts))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::commit::index_entry;
    use super::super::tests::settings;
    use super::*;

    /// Whether the working copy's (in-memory) index holds `path`.
    fn staged(wc: &WorkingCopy, path: &str) -> bool {
        wc.repository().index().unwrap().get_path(Path::new(path), 0).is_some()
    }

    #[test]
    fn a_marked_index_is_trusted_unread_only_when_just_opened_and_staging_in_memory_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let git = settings(dir.path());
        ensure_bare_remote(Path::new(&git.remote), &git.branch).unwrap();
        let wc = WorkingCopy::open(&git).unwrap();
        // One commit holding `kept`, its index written and marked clean, as a run leaves it.
        {
            let repo = wc.repository();
            let mut index = repo.index().unwrap();
            index.add_frombuffer(&index_entry("kept", 0o100644, 2), b"k\n").unwrap();
            index.write().unwrap();
            let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = Signature::now("test", "test@example.org").unwrap();
            repo.commit(Some("HEAD"), &sig, &sig, "first", &tree, &[]).unwrap();
        }
        wc.mark_clean();
        drop(wc);

        // Just opened: the marked index is trusted, and it is HEAD's.
        let wc = WorkingCopy::open(&git).unwrap();
        wc.reset_opened_to_head().unwrap();
        assert!(staged(&wc, "kept"));

        // A failed step staged in memory and never wrote the index: its file still
        // matches the mark, yet the reset after the failure drops the staging.
        wc.repository()
            .index()
            .unwrap()
            .add_frombuffer(&index_entry("stray", 0o100644, 2), b"s\n")
            .unwrap();
        assert!(staged(&wc, "stray"));
        wc.reset_to_head().unwrap();
        assert!(
            !staged(&wc, "stray"),
            "the in-memory staging of a failed step is dropped"
        );
        assert!(staged(&wc, "kept"));
    }

    #[test]
    fn a_work_tree_a_stopped_run_was_writing_in_place_is_put_back_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let git = settings(dir.path());
        ensure_bare_remote(Path::new(&git.remote), &git.branch).unwrap();
        let wc = WorkingCopy::open(&git).unwrap();
        let kept = "config/kept.conf".parse::<RepoPath>().unwrap();
        let staged = wc.stage_file(&kept, b"committed\n", 0o100644).unwrap();
        {
            let repo = wc.repository();
            let mut index = repo.index().unwrap();
            let mut entry = index_entry(kept.as_str(), 0o100644, staged.len);
            entry.id = staged.id;
            index.add(&entry).unwrap();
            index.write().unwrap();
            let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = Signature::now("test", "test@example.org").unwrap();
            repo.commit(Some("HEAD"), &sig, &sig, "first", &tree, &[]).unwrap();
        }
        wc.mark_clean();
        // The next run unmarks, then is killed halfway through writing a file in place,
        // after creating another.
        wc.unmark_clean().unwrap();
        let workdir = dir.path().join("wc");
        std::fs::write(workdir.join("config/kept.conf"), "comm").unwrap();
        std::fs::write(workdir.join("config/new.conf"), "new\n").unwrap();
        drop(wc);

        let wc = WorkingCopy::open(&git).unwrap();
        wc.reset_opened_to_head().unwrap();
        assert_eq!(
            std::fs::read_to_string(workdir.join("config/kept.conf")).unwrap(),
            "committed\n"
        );
        assert!(
            !workdir.join("config/new.conf").exists(),
            "a file HEAD lacks is removed"
        );
    }
}
