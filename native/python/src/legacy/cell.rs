//! One entity's cell in one bucket of an `entities` metric, as processor/engine/state.py
//! describes it, and its Redis form (processor/store/codec.py).

use std::collections::{BTreeMap, BTreeSet};

/// The caps of a metric's conditions, by kind, in declaration order.
#[derive(Default)]
pub struct Shape {
    pub count_caps: Vec<i64>,
    pub set_caps: Vec<usize>,
    pub value_count_caps: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct Cell {
    pub ts: i64,
    pub seq: i64,
    pub labels: Vec<String>,
    pub counts: Vec<i64>,
    pub sets: Vec<BTreeSet<String>>,
    pub value_counts: Vec<BTreeMap<String, i64>>,
    /// Changed by the current batch and not yet encoded for writing (not part of the state).
    pub unwritten: bool,
}

type Stored = (
    i64,
    i64,
    Vec<String>,
    Vec<i64>,
    Vec<BTreeSet<String>>,
    Vec<BTreeMap<String, i64>>,
    Vec<String>,
);

/// Keep only the `cap` smallest labels.
fn cap_set(set: &mut BTreeSet<String>, cap: usize) {
    while set.len() > cap {
        set.pop_last();
    }
}

impl Cell {
    pub fn empty(shape: &Shape, ts: i64, seq: i64, labels: Vec<String>) -> Cell {
        Cell {
            ts,
            seq,
            labels,
            counts: vec![0; shape.count_caps.len()],
            sets: vec![BTreeSet::new(); shape.set_caps.len()],
            value_counts: vec![BTreeMap::new(); shape.value_count_caps.len()],
            unwritten: false,
        }
    }

    /// The newest matching event gives the cell's time and segment labels.
    pub fn see(&mut self, ts: i64, seq: i64, labels: impl FnOnce() -> Vec<String>) {
        if ts > self.ts || (ts == self.ts && seq > self.seq) {
            self.ts = ts;
            self.seq = seq;
            self.labels = labels();
        }
    }

    pub fn count(&mut self, slot: usize, cap: i64) {
        if self.counts[slot] < cap {
            self.counts[slot] += 1;
        }
    }

    pub fn add_distinct(&mut self, slot: usize, cap: usize, value: &str) {
        let set = &mut self.sets[slot];
        if !set.contains(value) {
            set.insert(value.to_owned());
            cap_set(set, cap);
        }
    }

    pub fn add_value_count(&mut self, slot: usize, cap: i64, value: &str) {
        let counts = &mut self.value_counts[slot];
        match counts.get_mut(value) {
            Some(count) if *count < cap => *count += 1,
            Some(_) => {}
            None if cap > 0 => {
                counts.insert(value.to_owned(), 1);
            }
            None => {}
        }
    }

    /// Merge another cell of the same entity and bucket (associative and commutative).
    pub fn merge(&mut self, other: &Cell, shape: &Shape) {
        if other.ts > self.ts
            || (other.ts == self.ts && (other.seq, &other.labels) > (self.seq, &self.labels))
        {
            self.ts = other.ts;
            self.seq = other.seq;
            self.labels.clone_from(&other.labels);
        }
        for (i, cap) in shape.count_caps.iter().enumerate() {
            self.counts[i] = (self.counts[i] + other.counts[i]).min(*cap);
        }
        for (i, cap) in shape.set_caps.iter().enumerate() {
            self.sets[i].extend(other.sets[i].iter().cloned());
            cap_set(&mut self.sets[i], *cap);
        }
        for (i, cap) in shape.value_count_caps.iter().enumerate() {
            let mine = &mut self.value_counts[i];
            for (value, count) in &other.value_counts[i] {
                let entry = mine.entry(value.clone()).or_insert(0);
                *entry = (*entry + count).min(*cap);
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let sums: [String; 0] = [];
        serde_json::to_writer(
            out,
            &(self.ts, self.seq, &self.labels, &self.counts, &self.sets, &self.value_counts, sums),
        )
        .expect("a cell is plain data")
    }

    pub fn decode(raw: &[u8], shape: &Shape) -> Result<Cell, String> {
        let (ts, seq, labels, counts, sets, value_counts, sums): Stored =
            serde_json::from_slice(raw).map_err(|e| format!("stored cell is not readable: {e}"))?;
        if !sums.is_empty()
            || counts.len() != shape.count_caps.len()
            || sets.len() != shape.set_caps.len()
            || value_counts.len() != shape.value_count_caps.len()
        {
            return Err("stored cell does not have the metric's shape".to_owned());
        }
        Ok(Cell { ts, seq, labels, counts, sets, value_counts, unwritten: false })
    }
}
