//! Deduplication by event id within the original's horizon (docs/semantics.md, Dedup): a repeat
//! of an applied id timestamped before the original's horizon is ignored; a later one is a new
//! event and becomes the original. The rule depends on the two events alone.
//!
//! A million ids a second arrive in `nsm compute`, so the set is laid out for that: ids are
//! split over shards by their top bits, so that the set grows one small table at a time (one
//! huge table would be copied, and its memory faulted in afresh, at each doubling), and each id
//! is kept as two words beside its horizon (24 bytes a slot, not a `u128`'s padded 32).

use ahash::RandomState;
use hashbrown::HashTable;

use crate::event::EventId;

/// Shards: 2^SHARD_BITS of them, chosen by the id's top bits.
const SHARD_BITS: u32 = 8;

/// An id kept, with the horizon of its original.
#[derive(Clone, Debug)]
struct Kept {
    id: [u64; 2],
    until: i64,
}

fn words(id: EventId) -> [u64; 2] {
    [id as u64, (id >> 64) as u64]
}

/// The ids kept, each with the horizon of its original.
#[derive(Clone, Debug)]
pub struct Seen {
    shards: Vec<HashTable<Kept>>,
    /// The hashes are keyed per process, so that no chosen set of ids collides in a table.
    hasher: RandomState,
    len: usize,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            shards: (0..1 << SHARD_BITS).map(|_| HashTable::new()).collect(),
            hasher: RandomState::new(),
            len: 0,
        }
    }
}

impl Seen {
    fn place(&self, id: EventId) -> (usize, u64, [u64; 2]) {
        let key = words(id);
        ((id >> (128 - SHARD_BITS)) as usize, self.hasher.hash_one(key), key)
    }

    /// The horizon kept for an id, made with `until` when the id is new (then true).
    fn slot(&mut self, id: EventId, until: i64) -> (&mut i64, bool) {
        let (shard, hash, key) = self.place(id);
        let hasher = &self.hasher;
        match self.shards[shard].entry(hash, |kept| kept.id == key, |kept| hasher.hash_one(kept.id))
        {
            hashbrown::hash_table::Entry::Occupied(kept) => (&mut kept.into_mut().until, false),
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                self.len += 1;
                (&mut vacant.insert(Kept { id: key, until }).into_mut().until, true)
            }
        }
    }

    /// True, and the id registered with `horizon`, unless the event is a repeat within the
    /// original's horizon.
    pub fn first_time(&mut self, id: EventId, ts: i64, horizon: i64) -> bool {
        match self.slot(id, horizon) {
            (_, true) => true,
            (until, false) if ts < *until => false,
            (until, false) => {
                *until = horizon;
                true
            }
        }
    }

    /// Look up the ids of the next events ahead of judging them one by one: the lookups of a
    /// loop like this one do not wait on each other, so their memory reads overlap, and the
    /// judging then finds the set's memory in the cache (the set is far larger than it). Changes
    /// nothing; returns how many are kept already.
    pub fn look_ahead(&self, ids: impl Iterator<Item = EventId>) -> usize {
        ids.filter(|id| {
            let (shard, hash, key) = self.place(*id);
            self.shards[shard].find(hash, |kept| kept.id == key).is_some()
        })
        .count()
    }

    /// Make room for `more` ids (spread evenly over the shards, as ids are).
    pub fn reserve(&mut self, more: usize) {
        let each = more >> SHARD_BITS;
        let hasher = &self.hasher;
        for shard in &mut self.shards {
            shard.reserve(each, |kept| hasher.hash_one(kept.id));
        }
    }

    /// Whether an event at `ts` with this id would be a repeat (nothing registered).
    pub fn is_repeat(&self, id: EventId, ts: i64) -> bool {
        let (shard, hash, key) = self.place(id);
        self.shards[shard].find(hash, |kept| kept.id == key).is_some_and(|kept| ts < kept.until)
    }

    /// Keep an id read from stored state (the largest horizon wins).
    pub fn keep(&mut self, id: EventId, horizon: i64) {
        let (until, _) = self.slot(id, horizon);
        *until = (*until).max(horizon);
    }

    /// Forget the ids whose horizon is at or before `until`.
    pub fn forget(&mut self, until: i64) {
        for shard in &mut self.shards {
            shard.retain(|kept| kept.until > until);
        }
        self.len = self.shards.iter().map(HashTable::len).sum();
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_again_after_its_originals_horizon() {
        let mut seen = Seen::default();
        let (a, b) = (crate::event::event_id_of("a"), crate::event::event_id_of("b"));
        assert!(seen.first_time(a, 10, 20));
        assert!(!seen.first_time(a, 19, 30));
        assert!(seen.is_repeat(a, 19) && !seen.is_repeat(a, 20) && !seen.is_repeat(b, 0));
        assert!(seen.first_time(a, 20, 40));
        assert!(!seen.first_time(a, 39, 50));
        let c = crate::event::event_id_of("c");
        assert_eq!(seen.look_ahead([a, b, c, a].into_iter()), 2);
        assert_eq!(seen.len(), 1);
        seen.keep(b, 5);
        seen.keep(b, 3);
        assert!(seen.is_repeat(b, 4));
        assert_eq!(seen.len(), 2);
        seen.forget(5);
        assert_eq!((seen.len(), seen.is_repeat(b, 4), seen.is_repeat(a, 39)), (1, false, true));
    }

    #[test]
    fn many_ids_over_every_shard() {
        let mut seen = Seen::default();
        seen.reserve(10_000);
        let ids: Vec<EventId> =
            (0..20_000).map(|i| crate::event::event_id_of(&i.to_string())).collect();
        assert!(ids.iter().all(|id| seen.first_time(*id, 0, 1)));
        assert!(ids.iter().all(|id| !seen.first_time(*id, 0, 1)));
        assert_eq!(seen.len(), ids.len());
        assert!(seen.shards.iter().all(|shard| !shard.is_empty()));
    }
}
