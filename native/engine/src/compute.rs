//! A sequence of raw events in, every metric as of a time out (`nsm compute`, explain, evaluate).
//!
//! Events are applied in arrival order (which decides duplicates and ties of event time) with
//! their position as arrival sequence. With a given as-of time, events already before its window
//! are not kept at all (they are late for it); the state is kept whole, so it can also be
//! evaluated at any earlier time (history.rs).

use crate::dedup::Seen;
use crate::engine::Engine;
use crate::event::{decode, InputFormat, Invalid, Reason};
use crate::fields::Captures;
use crate::finish::MetricValue;
use crate::spec::{CatalogSpec, SpecError};

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Applied, with its event time.
    Applied(i64),
    Duplicate,
    Invalid(Invalid),
}

pub struct Compute {
    pub engine: Engine,
    seen: Seen,
    at_ms: Option<i64>,
    now_ms: i64,
    max_future_skew_ms: i64,
    seq: i64,
    pub applied: i64,
    pub duplicates: i64,
    pub invalid: Vec<(Reason, i64)>,
    pub newest: Option<i64>,
}

/// Whether a JSON Lines line holds nothing (blank lines are not events).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

impl Compute {
    pub fn new(
        spec: &CatalogSpec,
        format: InputFormat,
        at_ms: Option<i64>,
        now_ms: i64,
        max_future_skew_ms: i64,
    ) -> Result<Compute, SpecError> {
        Ok(Compute {
            engine: Engine::new(spec, format)?,
            seen: Seen::default(),
            at_ms,
            now_ms,
            max_future_skew_ms,
            seq: 0,
            applied: 0,
            duplicates: 0,
            invalid: Reason::ALL.iter().map(|r| (*r, 0)).collect(),
            newest: None,
        })
    }

    /// One message, the next in arrival order.
    pub fn message<'a>(&mut self, raw: &'a [u8], captures: &mut Captures<'a>) -> Verdict {
        let seq = self.seq;
        self.seq += 1;
        let header =
            match decode(&self.engine.paths, raw, self.now_ms, self.max_future_skew_ms, captures) {
                Ok(header) => header,
                Err(invalid) => {
                    if let Some(count) = self.invalid.iter_mut().find(|(r, _)| *r == invalid.reason)
                    {
                        count.1 += 1;
                    }
                    return Verdict::Invalid(invalid);
                }
            };
        if let Some(id) = header.id {
            let horizon = self.engine.horizon.of(header.ts);
            if !self.seen.first_time(id, header.ts, horizon) {
                self.duplicates += 1;
                return Verdict::Duplicate;
            }
        }
        self.engine.apply(captures, header, seq, self.at_ms);
        self.applied += 1;
        self.newest = Some(self.newest.map_or(header.ts, |n| n.max(header.ts)));
        Verdict::Applied(header.ts)
    }

    /// An event already judged valid and new (a log's kept event), with its arrival sequence:
    /// applied without deduplication. False when it is not valid after all.
    pub fn apply_kept<'a>(&mut self, raw: &'a [u8], seq: i64, captures: &mut Captures<'a>) -> bool {
        match decode(&self.engine.paths, raw, self.now_ms, self.max_future_skew_ms, captures) {
            Ok(header) => {
                self.engine.apply(captures, header, seq, self.at_ms);
                self.applied += 1;
                self.newest = Some(self.newest.map_or(header.ts, |n| n.max(header.ts)));
                true
            }
            Err(_) => false,
        }
    }

    /// Every metric at each of `times` (ascending), from the complete state.
    pub fn sweep(
        &self,
        spec: &CatalogSpec,
        times: &[i64],
    ) -> Result<Vec<Vec<MetricValue>>, SpecError> {
        let summaries = crate::history::sweep(spec, &[&self.engine], times)?;
        Ok(summaries.iter().map(|s| self.engine.finish(s)).collect())
    }

    /// The lines of a JSON Lines chunk (whole lines), blank ones skipped.
    pub fn lines(&mut self, chunk: &[u8]) {
        self.seen.reserve(memchr::memchr_iter(b'\n', chunk).count());
        let mut captures = Captures::new();
        for line in chunk.split(|b| *b == b'\n') {
            if !is_blank(line) {
                self.message(line, &mut captures);
            }
        }
    }

    /// The as-of time: the one given, else the newest applied event, else the clock.
    pub fn as_of(&self) -> i64 {
        self.at_ms.or(self.newest).unwrap_or(self.now_ms)
    }

    pub fn evaluate(&mut self) -> Vec<MetricValue> {
        let as_of = self.as_of();
        self.engine.evaluate(as_of)
    }
}
