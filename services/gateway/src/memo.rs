//! The JSON of the last few answers of one kind, keyed by the answer's protobuf bytes as
//! the service sent them: a console polling the same History page gets the same JSON
//! without the page being decoded, compared field by field or serialised again (together
//! most of the shim's own time per page under load).
//!
//! Invariant: JSON is reused only for wire bytes equal to those it was made from. Equal
//! bytes decode to an equal message, so the JSON is the one [`to_json_vec`] gives for it.
//! Whether the answer is current is the service's business, as for any answer: the memo
//! never answers a call by itself.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;

use crate::json::to_json_vec;

/// How many answers are kept (oldest dropped first).
pub const KEPT: usize = 8;

/// Why an answer has no JSON.
#[derive(Debug)]
pub enum MemoError {
    /// The service's bytes are not a message of the kind.
    Decode(prost::DecodeError),
    /// The message cannot be written as JSON.
    Json(serde_json::Error),
}

/// Recent answers of one kind: their wire bytes and their JSON.
#[derive(Debug)]
pub struct JsonMemo<T> {
    recent: Mutex<VecDeque<Arc<(Bytes, Bytes)>>>,
    kind: PhantomData<fn() -> T>,
}

impl<T> Default for JsonMemo<T> {
    fn default() -> Self {
        JsonMemo {
            recent: Mutex::new(VecDeque::with_capacity(KEPT)),
            kind: PhantomData,
        }
    }
}

impl<T: prost::Message + Default + Serialize> JsonMemo<T> {
    /// The answer whose protobuf bytes are `wire`, as proto3 JSON: the kept JSON of the
    /// same bytes, or decoded, serialised and kept.
    pub fn json(&self, wire: Bytes) -> Result<Bytes, MemoError> {
        // The newest first: a polled page is most often the last one served.
        if let Some(hit) = self.lock().iter().rev().find(|kept| kept.0 == wire) {
            return Ok(hit.1.clone());
        }
        let msg = T::decode(wire.clone()).map_err(MemoError::Decode)?;
        let body = Bytes::from(to_json_vec(&msg).map_err(MemoError::Json)?);
        let mut recent = self.lock();
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(Arc::new((wire, body.clone())));
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<(Bytes, Bytes)>>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config_backup_proto::v1 as pb;
    use prost::Message;

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

    fn wire(msg: &pb::HistoryResponse) -> Bytes {
        Bytes::from(msg.encode_to_vec())
    }

    #[test]
    fn the_same_bytes_get_the_kept_json_and_any_difference_new_json() {
        let memo = JsonMemo::<pb::HistoryResponse>::default();
        let first = memo.json(wire(&page(&["a", "b"], 1_700_000_000))).unwrap();
        assert_eq!(first, to_json_vec(&page(&["a", "b"], 1_700_000_000)).unwrap());
        let again = memo.json(wire(&page(&["a", "b"], 1_700_000_000))).unwrap();
        assert_eq!(again.as_ptr(), first.as_ptr(), "the same JSON, not made again");

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
            let body = memo.json(wire(&other)).unwrap();
            assert_ne!(body.as_ptr(), first.as_ptr());
            assert_eq!(body, expected);
        }
    }

    #[test]
    fn bytes_that_are_not_the_message_are_an_error_and_not_kept() {
        let memo = JsonMemo::<pb::HistoryResponse>::default();
        // Field 1 (entries) as a length-delimited value longer than what follows.
        let err = memo.json(Bytes::from_static(&[0x0a, 0x05, 0x01])).unwrap_err();
        assert!(matches!(err, MemoError::Decode(_)), "{err:?}");
        assert_eq!(memo.lock().len(), 0);
    }

    #[test]
    fn only_the_last_answers_are_kept() {
        let memo = JsonMemo::<pb::HistoryResponse>::default();
        let first = memo.json(wire(&page(&["first"], 0))).unwrap();
        for i in 0..KEPT {
            memo.json(wire(&page(&[&i.to_string()], 0))).unwrap();
        }
        assert_eq!(memo.lock().len(), KEPT);
        let again = memo.json(wire(&page(&["first"], 0))).unwrap();
        assert_ne!(again.as_ptr(), first.as_ptr(), "dropped, made again");
        assert_eq!(again, first);
    }
}
