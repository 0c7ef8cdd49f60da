//! The messages last made from the History pages the engine keeps: a page asked for
//! again while the engine still keeps it is answered with a copy of the entries already
//! converted, not converted row by row again (the conversion, with each row's metadata
//! and summary parsed, was a fifth of the server's CPU under REST load).
//!
//! Invariant: entries are reused only for the very page the engine returned (the same
//! allocation: the memo holds the page, so its address cannot be reused by another), shown
//! at the same page size under the same query fingerprint. Whether the page is current is
//! the engine's business (`engine/history.rs`); the memo never answers a call by itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many answers are kept (oldest dropped first).
pub const KEPT: usize = 8;

/// Recent answers made from pages of `R`.
#[derive(Debug)]
pub struct PageMemo<R, V> {
    recent: Mutex<VecDeque<Made<R, V>>>,
}

#[derive(Debug)]
struct Made<R, V> {
    page: Arc<[R]>,
    shown: usize,
    fingerprint: String,
    made: V,
}

impl<R, V> Default for PageMemo<R, V> {
    fn default() -> Self {
        PageMemo {
            recent: Mutex::new(VecDeque::with_capacity(KEPT)),
        }
    }
}

impl<R, V: Clone> PageMemo<R, V> {
    /// What `make` gives for `page` shown `shown` rows at a time under `fingerprint`: a
    /// copy of the kept one when this very page was answered so before, else made and kept.
    pub fn get_or_make(&self, page: &Arc<[R]>, shown: usize, fingerprint: &str, make: impl FnOnce() -> V) -> V {
        let hit = self
            .lock()
            .iter()
            .find(|m| Arc::ptr_eq(&m.page, page) && m.shown == shown && m.fingerprint == fingerprint)
            .map(|m| m.made.clone());
        if let Some(made) = hit {
            return made;
        }
        let made = make();
        let mut recent = self.lock();
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(Made {
            page: Arc::clone(page),
            shown,
            fingerprint: fingerprint.to_owned(),
            made: made.clone(),
        });
        made
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Made<R, V>>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn only_the_same_page_at_the_same_size_and_fingerprint_is_answered_again() {
        let memo: PageMemo<u32, String> = PageMemo::default();
        let made = Cell::new(0);
        let make = |page: &Arc<[u32]>| {
            made.set(made.get() + 1);
            format!("{page:?}")
        };
        let page: Arc<[u32]> = Arc::from(vec![1, 2, 3]);
        assert_eq!(memo.get_or_make(&page, 2, "f", || make(&page)), "[1, 2, 3]");
        assert_eq!(memo.get_or_make(&page, 2, "f", || make(&page)), "[1, 2, 3]");
        assert_eq!(made.get(), 1, "the same page again is not made again");
        // An equal page read anew (the engine's page expired) is made again.
        let again: Arc<[u32]> = Arc::from(vec![1, 2, 3]);
        memo.get_or_make(&again, 2, "f", || make(&again));
        assert_eq!(made.get(), 2);
        memo.get_or_make(&page, 3, "f", || make(&page));
        assert_eq!(made.get(), 3, "another page size");
        memo.get_or_make(&page, 2, "g", || make(&page));
        assert_eq!(made.get(), 4, "another fingerprint");
    }

    #[test]
    fn only_the_last_answers_are_kept() {
        let memo: PageMemo<u32, usize> = PageMemo::default();
        let pages: Vec<Arc<[u32]>> = (0..=KEPT as u32).map(|i| Arc::from(vec![i])).collect();
        for (i, p) in pages.iter().enumerate() {
            memo.get_or_make(p, 1, "f", || i);
        }
        assert_eq!(memo.get_or_make(&pages[0], 1, "f", || 99), 99, "the oldest was dropped");
        assert_eq!(
            memo.get_or_make(&pages[KEPT], 1, "f", || 99),
            KEPT,
            "the newest is kept"
        );
    }
}
