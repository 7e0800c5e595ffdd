//! Deduplication by event id within the original's horizon (docs/semantics.md, Dedup): a repeat
//! of an applied id timestamped before the original's horizon is ignored; a later one is a new
//! event and becomes the original. The rule depends on the two events alone.

use ahash::AHashMap;

use crate::event::EventId;

/// The ids kept, each with the horizon of its original.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    until: AHashMap<EventId, i64>,
}

impl Seen {
    /// True, and the id registered with `horizon`, unless the event is a repeat within the
    /// original's horizon.
    pub fn first_time(&mut self, id: EventId, ts: i64, horizon: i64) -> bool {
        match self.until.get_mut(&id) {
            Some(until) if ts < *until => false,
            Some(until) => {
                *until = horizon;
                true
            }
            None => {
                self.until.insert(id, horizon);
                true
            }
        }
    }

    /// Make room for `more` ids (growing a large map id by id costs a copy per doubling).
    pub fn reserve(&mut self, more: usize) {
        self.until.reserve(more);
    }

    /// Whether an event at `ts` with this id would be a repeat (nothing registered).
    pub fn is_repeat(&self, id: EventId, ts: i64) -> bool {
        self.until.get(&id).is_some_and(|until| ts < *until)
    }

    /// Keep an id read from stored state (the largest horizon wins).
    pub fn keep(&mut self, id: EventId, horizon: i64) {
        let until = self.until.entry(id).or_insert(horizon);
        *until = (*until).max(horizon);
    }

    /// Forget the ids whose horizon is at or before `until`.
    pub fn forget(&mut self, until: i64) {
        self.until.retain(|_, horizon| *horizon > until);
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}
