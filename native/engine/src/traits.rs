//! Account traits from group calls, as segments of `entities` metrics (docs/semantics.md, Account
//! traits from group calls).
//!
//! A segment named `group.<path>` labels an entity with the value at `<path>` of the `traits` of
//! its account's latest group call at or before the entity's most recent matching event in the
//! window (by event time, then arrival), `unknown` when there is none. An event's account is its
//! `groupId` (a plain field), else its `context.groupId`. The cells keep, for such a segment, the
//! event's account; the value is looked up when the metric is evaluated, so a group call that
//! arrives after the events it precedes still labels them.

use std::collections::BTreeSet;

use ahash::AHashMap;

use crate::codec::{put_int, put_str, put_uint, FormatError, Reader};
use crate::json::{parse_tree, Tree, Value};
use crate::label::{label, UNKNOWN};

/// The event type of a group call.
pub const GROUP_CALL: &str = "group";
pub const PREFIX: &str = "group.";
/// The fields an event's account is read from, in order, and a group call's traits.
pub const ACCOUNT_FIELDS: [&str; 2] = ["groupId", "context.groupId"];
pub const TRAITS: &str = "traits";

pub fn is_trait(segment: &str) -> bool {
    segment.starts_with(PREFIX) && segment.len() > PREFIX.len()
}

/// What a cell keeps in a trait segment's slot: the event's account, marked, or "" for none.
pub fn account_ref(account: Option<&Value>) -> String {
    match account {
        None => String::new(),
        Some(value) => format!("@{}", label(value)),
    }
}

/// One group call's value of one trait: (time, arrival sequence, label).
type Entry = (i64, i64, String);

/// The trait history of one metric's accounts.
pub struct Traits {
    /// Per trait segment of the metric (by its order among them): the path inside `traits`, and
    /// its segment name.
    paths: Vec<(Vec<String>, String)>,
    /// Account ref -> per trait, its entries in order.
    history: AHashMap<String, Vec<Vec<Entry>>>,
    /// Changes on every new value: labels computed before may be stale.
    pub version: u64,
    touched: BTreeSet<String>,
}

fn walk<'t>(tree: &'t Tree, path: &[String]) -> Option<&'t Tree> {
    let mut value = tree;
    for part in path {
        let Tree::Object(members) = value else { return None };
        value = &members.iter().rev().find(|(k, _)| k == part)?.1;
    }
    Some(value)
}

fn tree_label(tree: &Tree) -> Option<String> {
    let mut text = String::new();
    crate::json::write_canonical(&mut text, tree);
    let mut scanner = crate::json::Scanner::new(&text);
    let value = scanner.value(0).ok()?;
    (!value.is_null()).then(|| label(&value).into_owned())
}

impl Traits {
    /// The traits of the segments named `group.<path>`.
    pub fn new(segments: &[&str]) -> Traits {
        let paths = segments
            .iter()
            .map(|s| (s[PREFIX.len()..].split('.').map(str::to_owned).collect(), (*s).to_owned()))
            .collect();
        Traits { paths, history: AHashMap::new(), version: 0, touched: BTreeSet::new() }
    }

    fn insert(&mut self, account: &str, trait_index: usize, entry: Entry) {
        let traits = self.paths.len();
        let per_trait =
            self.history.entry(account.to_owned()).or_insert_with(|| vec![Vec::new(); traits]);
        let entries = &mut per_trait[trait_index];
        let at = entries.partition_point(|e| *e < entry);
        if entries.get(at) != Some(&entry) {
            entries.insert(at, entry);
        }
        self.version += 1;
        self.touched.insert(account.to_owned());
    }

    /// A group call of `account` (a ref, not ""): its traits (`traits`, an object) at (ts, seq).
    pub fn record(&mut self, account: &str, ts: i64, seq: i64, traits: Option<&Value>) {
        let Some(Value::Object(text)) = traits else { return };
        let Ok(tree) = parse_tree(text) else { return };
        for index in 0..self.paths.len() {
            let found = walk(&tree, &self.paths[index].0).and_then(tree_label);
            if let Some(value) = found {
                self.insert(account, index, (ts, seq, value));
            }
        }
    }

    /// The trait's label as of `ts` for the account `account` (a ref), or `unknown`.
    pub fn value(&self, account: &str, trait_index: usize, ts: i64) -> &str {
        let Some(entries) = self.history.get(account).map(|t| &t[trait_index]) else {
            return UNKNOWN;
        };
        let at = entries.partition_point(|e| e.0 <= ts);
        if at == 0 {
            UNKNOWN
        } else {
            &entries[at - 1].2
        }
    }

    /// Keep, for `account` and each trait, the values from `first_ms` (the start of the window's
    /// first bucket) on, and the last one before: nothing older can be the latest for an event in
    /// the window. Called only for a history about to be written (Partition::writes), so that
    /// what is stored is what is kept.
    pub fn prune(&mut self, account: &str, first_ms: i64) {
        let Some(per_trait) = self.history.get_mut(account) else { return };
        for entries in per_trait.iter_mut() {
            let before = entries.partition_point(|e| e.0 < first_ms);
            if before > 1 {
                entries.drain(..before - 1);
            }
        }
    }

    /// Count an account's history as changed (to be written).
    pub fn touch(&mut self, account: &str) {
        self.touched.insert(account.to_owned());
    }

    /// The accounts whose history changed since the last call.
    pub fn take_touched(&mut self) -> Vec<String> {
        std::mem::take(&mut self.touched).into_iter().collect()
    }

    pub fn accounts(&self) -> Vec<String> {
        self.history.keys().cloned().collect()
    }

    /// An account's history as stored: per trait, its entries (time, sequence, label).
    pub fn encode(&self, account: &str) -> Option<Vec<u8>> {
        let per_trait = self.history.get(account)?;
        let mut out = Vec::new();
        for entries in per_trait {
            put_uint(&mut out, entries.len() as u64);
            for (ts, seq, value) in entries {
                put_int(&mut out, *ts);
                put_int(&mut out, *seq);
                put_str(&mut out, value);
            }
        }
        Some(out)
    }

    /// Add an account's stored history.
    pub fn decode(&mut self, account: &str, bytes: &[u8]) -> Result<(), FormatError> {
        let mut input = Reader::new(bytes);
        for index in 0..self.paths.len() {
            let n = input.len()?;
            for _ in 0..n {
                let entry = (input.int()?, input.int()?, input.str()?.to_owned());
                self.insert(account, index, entry);
            }
        }
        self.touched.remove(account);
        Ok(())
    }

    /// An account's history of the first stored format: `{segment: [[ts, seq, label], ...]}`.
    pub fn load_legacy(&mut self, account: &str, raw: &[u8]) -> Result<(), FormatError> {
        let stored: std::collections::BTreeMap<String, Vec<(i64, i64, String)>> =
            serde_json::from_slice(raw)
                .map_err(|e| FormatError::new(format!("a stored trait history: {e}")))?;
        for (name, entries) in stored {
            if let Some(index) = self.paths.iter().position(|(_, n)| *n == name) {
                for entry in entries {
                    self.insert(account, index, entry);
                }
            }
        }
        self.touched.remove(account);
        Ok(())
    }
}
