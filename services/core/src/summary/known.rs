//! Summaries already made, for a run to take instead of making them again.
//!
//! Invariant: a summary is a function of its domain, its path and the two stored forms
//! it compares, so one is reused only for the same path, the same old blob (its git id)
//! and the same SHA-256 of the new stored form: what a run compares. A rollback's plan
//! tells the change of every file it writes; its recording run meets the same pairs
//! (the live file committed by the snapshot, the target written), unless a file changed
//! in between, when it makes its own.

use std::collections::HashMap;

use super::Summary;
use crate::statcache::Digest256;

/// Summaries by path, each with the old stored form's blob id and the new one's SHA-256.
#[derive(Debug, Clone, Default)]
pub struct KnownSummaries(HashMap<String, (git2::Oid, Digest256, Summary)>);

impl KnownSummaries {
    /// Keeps `summary` as the change of `path` from the blob `old` to the stored form
    /// hashing to `new`.
    pub fn insert(&mut self, path: &str, old: git2::Oid, new: Digest256, summary: Summary) {
        self.0.insert(path.to_owned(), (old, new, summary));
    }

    /// The change of `path` from the blob `old` to the stored form whose SHA-256 is
    /// `new`, if it is kept.
    pub fn get(&self, path: &str, old: git2::Oid, new: &Digest256) -> Option<&Summary> {
        self.0
            .get(path)
            .filter(|(kept_old, kept_new, _)| *kept_old == old && kept_new == new)
            .map(|(_, _, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_taken_only_for_the_same_path_and_both_stored_forms() {
        let mut known = KnownSummaries::default();
        let summary = Summary {
            summary: "+2 reservations".into(),
            changes: Vec::new(),
        };
        let old = git2::Oid::hash_object(git2::ObjectType::Blob, b"old").unwrap();
        known.insert("config/kea/kea-dhcp4.conf", old, [2; 32], summary.clone());
        assert_eq!(known.get("config/kea/kea-dhcp4.conf", old, &[2; 32]), Some(&summary));
        assert_eq!(known.get("config/kea/other.conf", old, &[2; 32]), None, "another path");
        assert_eq!(
            known.get("config/kea/kea-dhcp4.conf", old, &[3; 32]),
            None,
            "another new form"
        );
        let other = git2::Oid::hash_object(git2::ObjectType::Blob, b"other").unwrap();
        assert_eq!(
            known.get("config/kea/kea-dhcp4.conf", other, &[2; 32]),
            None,
            "another old blob"
        );
    }
}
