//! History: pages of the audit trail, each read once and shared by every caller that asks
//! for the same page while it is current.
//!
//! Invariant: a page is current while this process has committed no write to the
//! trail's commits and files since it was read ([`Store::trail_generation`]: recording,
//! retention, rewritten hashes; a lock or a run's record changes no History row) and it
//! is younger than [`HISTORY_MAX_AGE`]. Every change this process makes shows in the next
//! History call; one made by another process sharing the database (a replica, another
//! site's server) shows within [`HISTORY_MAX_AGE`], as for Status. A read that fails is
//! not kept: the next caller reads again. The pages kept hold at most [`CACHED_ROWS`]
//! rows in all.

use std::collections::VecDeque;
use std::time::Duration;

use super::*;
use crate::store::{AuditRow, HistoryQuery};

/// How long a History page read by this process may be reused when nothing it wrote
/// changed.
pub const HISTORY_MAX_AGE: Duration = Duration::from_secs(1);

/// The rows (by the pages' limits) the kept pages may hold in all: about 1 KiB each. A
/// page asking for more is read for its caller alone.
pub const CACHED_ROWS: i64 = 4096;

/// The pages read lately, oldest first.
#[derive(Debug, Default)]
pub(super) struct HistoryCache {
    pages: std::sync::Mutex<VecDeque<Arc<Page>>>,
}

/// One page: its query, when and at which write generation it was asked for, and its
/// rows once read (callers that arrive while it is read wait for that one read).
#[derive(Debug)]
struct Page {
    query: HistoryQuery,
    generation: u64,
    at: Instant,
    rows: tokio::sync::OnceCell<Arc<[AuditRow]>>,
}

impl HistoryCache {
    /// The current page for `query`, or a new one in its place, the oldest pages dropped
    /// to keep the rows within [`CACHED_ROWS`]. `None` for a query too large to keep.
    fn page(&self, query: &HistoryQuery, generation: u64) -> Option<Arc<Page>> {
        if query.limit > CACHED_ROWS {
            return None;
        }
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(page) = pages
            .iter()
            .find(|p| p.query == *query && p.generation == generation && p.at.elapsed() < HISTORY_MAX_AGE)
        {
            return Some(page.clone());
        }
        pages.retain(|p| p.query != *query && p.generation == generation && p.at.elapsed() < HISTORY_MAX_AGE);
        let page = Arc::new(Page {
            query: query.clone(),
            generation,
            at: Instant::now(),
            rows: tokio::sync::OnceCell::new(),
        });
        pages.push_back(page.clone());
        let mut held: i64 = pages.iter().map(|p| p.query.limit).sum();
        while held > CACHED_ROWS {
            let Some(old) = pages.pop_front() else { break };
            held -= old.query.limit;
        }
        Some(page)
    }
}

impl Engine {
    /// History rows from the audit trail, newest first. Another site's
    /// ([`HistoryQuery::site`]) must have announced itself: a mistyped name is NotFound,
    /// not an empty trail. Concurrent and repeated callers of a current page share one
    /// read (see the module's invariant).
    pub async fn history(&self, query: &HistoryQuery) -> Result<Arc<[AuditRow]>, EngineError> {
        if let Some(site) = query.site.as_deref().filter(|s| *s != self.site()) {
            self.known_site(site).await?;
        }
        // The generation is taken before the read: a write that lands during it moves the
        // generation, and the next caller reads again.
        let generation = self.inner.store.trail_generation();
        let read = || async { Ok::<_, EngineError>(Arc::from(self.inner.store.history(query).await?)) };
        match self.inner.history_cache.page(query, generation) {
            Some(page) => Ok(page.rows.get_or_try_init(read).await?.clone()),
            None => read().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: i64, domain: Option<Domain>) -> HistoryQuery {
        HistoryQuery {
            domain,
            limit,
            ..Default::default()
        }
    }

    #[test]
    fn a_page_is_shared_until_the_generation_moves() {
        let cache = HistoryCache::default();
        let q = query(101, Some(Domain::Dns));
        let a = cache.page(&q, 7).unwrap();
        let b = cache.page(&q, 7).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same query, same generation: one page");
        let c = cache.page(&q, 8).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "a write since: a new page");
        let d = cache.page(&query(101, Some(Domain::Kea)), 8).unwrap();
        assert!(!Arc::ptr_eq(&c, &d), "another query: another page");
        assert_eq!(cache.pages.lock().unwrap().len(), 2, "the stale page is dropped");
    }

    #[test]
    fn a_page_older_than_the_max_age_is_read_again() {
        let cache = HistoryCache::default();
        let q = query(10, None);
        let a = cache.page(&q, 1).unwrap();
        std::thread::sleep(HISTORY_MAX_AGE + Duration::from_millis(20));
        let b = cache.page(&q, 1).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn the_pages_kept_hold_at_most_the_row_budget() {
        let cache = HistoryCache::default();
        for i in 0..100 {
            cache.page(&query(1000 + i, None), 1).unwrap();
        }
        let held: i64 = cache.pages.lock().unwrap().iter().map(|p| p.query.limit).sum();
        assert!(held <= CACHED_ROWS, "{held}");
        assert!(
            cache.page(&query(CACHED_ROWS + 1, None), 1).is_none(),
            "too large to keep"
        );
        // The newest pages are the ones kept.
        let newest = cache.page(&query(1099, None), 1).unwrap();
        assert!(Arc::ptr_eq(&newest, &cache.page(&query(1099, None), 1).unwrap()));
    }
}
