//! The JSON of the last few answers of one kind, reused for an answer equal to one of
//! them: a console polling the same History page gets the same bytes without serialising
//! a page of rows again (the serialisation was most of the shim's own time per page).
//!
//! Invariant: bytes are reused only for a message equal (`PartialEq`, every field) to the
//! one they were made from, so they are the bytes [`to_json_vec`] gives for this message.
//! Whether the message is current is the service's business, as for any answer: the
//! memo never answers a call by itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;

use crate::json::to_json_vec;

/// How many answers are kept (oldest dropped first).
pub const KEPT: usize = 8;

/// Recent answers of one kind and their JSON.
#[derive(Debug)]
pub struct JsonMemo<T> {
    recent: Mutex<VecDeque<Arc<(T, Bytes)>>>,
}

impl<T> Default for JsonMemo<T> {
    fn default() -> Self {
        JsonMemo {
            recent: Mutex::new(VecDeque::with_capacity(KEPT)),
        }
    }
}

impl<T: PartialEq + Serialize> JsonMemo<T> {
    /// `msg` as proto3 JSON: the kept bytes of an equal answer, or serialised and kept.
    pub fn json(&self, msg: T) -> Result<Bytes, serde_json::Error> {
        // Compared outside the lock: a page's comparison is a walk over its rows.
        let recent: Vec<Arc<(T, Bytes)>> = self.lock().iter().rev().cloned().collect();
        if let Some(hit) = recent.iter().find(|kept| kept.0 == msg) {
            return Ok(hit.1.clone());
        }
        let body = Bytes::from(to_json_vec(&msg)?);
        let mut recent = self.lock();
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(Arc::new((msg, body.clone())));
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<(T, Bytes)>>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config_backup_proto::v1 as pb;

    fn page(ids: &[&str], at: i64) -> pb::HistoryResponse {
        pb::HistoryResponse {
            entries: ids
                .iter()
                .map(|id| pb::HistoryEntry {
                    id: (*id).to_owned(),
                    file: format!("config/{id}.conf"),
                    backed_up_at: Some(pbjson_types::Timestamp { seconds: at, nanos: 0 }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn an_equal_answer_gets_the_kept_bytes_and_any_difference_new_ones() {
        let memo = JsonMemo::default();
        let first = memo.json(page(&["a", "b"], 1_700_000_000)).unwrap();
        assert_eq!(first, to_json_vec(&page(&["a", "b"], 1_700_000_000)).unwrap());
        let again = memo.json(page(&["a", "b"], 1_700_000_000)).unwrap();
        assert_eq!(again.as_ptr(), first.as_ptr(), "the same bytes, not serialised again");

        for other in [
            page(&["a"], 1_700_000_000),
            page(&["a", "c"], 1_700_000_000),
            page(&["a", "b"], 1_700_000_001),
            pb::HistoryResponse {
                next_page_token: "t".into(),
                ..page(&["a", "b"], 1_700_000_000)
            },
        ] {
            let expected = to_json_vec(&other).unwrap();
            let body = memo.json(other).unwrap();
            assert_ne!(body.as_ptr(), first.as_ptr());
            assert_eq!(body, expected);
        }
    }

    #[test]
    fn only_the_last_answers_are_kept() {
        let memo = JsonMemo::default();
        let first = memo.json(page(&["first"], 0)).unwrap();
        for i in 0..KEPT {
            memo.json(page(&[&i.to_string()], 0)).unwrap();
        }
        assert_eq!(memo.lock().len(), KEPT);
        let again = memo.json(page(&["first"], 0)).unwrap();
        assert_ne!(again.as_ptr(), first.as_ptr(), "dropped, serialised again");
        assert_eq!(again, first);
    }
}
