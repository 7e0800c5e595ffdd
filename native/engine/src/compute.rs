//! A sequence of raw events in, every metric as of a time out (`nsm compute`, explain, evaluate).
//!
//! Events are applied in arrival order (which decides duplicates and ties of event time) with
//! their position as arrival sequence. With a given as-of time, events already before its window
//! are not kept at all (they are late for it); the state is kept whole, so it can also be
//! evaluated at any earlier time (history.rs).

use std::sync::{mpsc, Arc};

use ahash::AHashMap;

use crate::dedup::Seen;
use crate::engine::Engine;
use crate::fault;

use crate::event::{decode, decode_into, Header, InputFormat, Invalid, Reason};
use crate::fields::{Captured, Captures, Paths};
use crate::finish::MetricValue;
use crate::spec::{CatalogSpec, SpecError};

/// Below this many lines a chunk is decoded in this thread.
const PARALLEL_FROM_LINES: usize = 4_096;
/// Lines a decoding thread hands over at a time.
const BLOCK_LINES: usize = 512;

/// Lines decoded ahead of the engine: each one's header (or why it is invalid), and its captured
/// values, `slots` per line.
#[derive(Default)]
struct Block<'a> {
    results: Vec<Result<Header, Invalid>>,
    captures: Vec<Option<crate::json::Value<'a>>>,
}

impl<'a> Block<'a> {
    fn decode(&mut self, paths: &Paths, lines: &[&'a [u8]], now_ms: i64, skew_ms: i64) {
        let slots = paths.slots();
        self.results.clear();
        // Sized only: decoding a line clears its slots first (clearing them here too wrote
        // every block's slots twice).
        self.captures.resize(lines.len() * slots, None);
        for (k, line) in lines.iter().enumerate() {
            let captures = &mut self.captures[k * slots..(k + 1) * slots];
            let decoded = fault::catch(|| decode_into(paths, line, now_ms, skew_ms, captures));
            self.results.push(decoded.unwrap_or_else(unprocessable));
        }
    }
}

/// A message the engine failed on while decoding it: invalid, as `unprocessable`.
fn unprocessable<T>(detail: String) -> Result<T, Invalid> {
    Err(Invalid { reason: Reason::Unprocessable, detail })
}

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Applied, with its event time.
    Applied(i64),
    Duplicate,
    Invalid(Invalid),
    /// The engine failed while applying it (`Compute::failure`): nothing more is applied.
    Failed,
}

/// A message that was not applied: its position in the input (from 0), why, and the detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub position: i64,
    pub reason: Reason,
    pub detail: String,
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
    /// Every invalid message, in order.
    pub rejected: Vec<Rejected>,
    /// For each blank line of the JSON Lines read, how many messages came before it (the line
    /// numbers of `rejected`).
    pub blanks: Vec<i64>,
    /// Positions an earlier run failed on, with what went wrong: invalid, as `unprocessable`.
    pub failed: AHashMap<i64, String>,
    /// The position this run failed on while applying it, and what went wrong: the state may
    /// hold part of it, so nothing more is applied; start again with it among `failed`.
    pub failure: Option<(i64, String)>,
    /// Threads that decode ahead of the one applying (0: this thread decodes too).
    pub decoders: usize,
    /// The bytes of JSON Lines still to come, when known (`expect_bytes`).
    expected_bytes: Option<usize>,
}

/// Decoding threads worth starting: the cores left beside the applying thread, at most three
/// (the engine applies events in order, one at a time, so more would wait on it).
pub fn default_decoders() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get() - 1).min(3)
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
            rejected: Vec::new(),
            blanks: Vec::new(),
            failed: AHashMap::new(),
            failure: None,
            decoders: default_decoders(),
            expected_bytes: None,
        })
    }

    /// One message, the next in arrival order.
    pub fn message<'a>(&mut self, raw: &'a [u8], captures: &mut Captures<'a>) -> Verdict {
        if self.failure.is_some() || self.failed.contains_key(&self.seq) {
            return self.accept(raw, Ok(Header { ts: 0, id: None }), captures);
        }
        let (now, skew) = (self.now_ms, self.max_future_skew_ms);
        let paths = &self.engine.paths;
        let decoded =
            fault::catch(|| decode(paths, raw, now, skew, captures)).unwrap_or_else(unprocessable);
        self.accept(raw, decoded, captures)
    }

    /// The next message in arrival order, decoded (its captured values in `captures`).
    fn accept(
        &mut self,
        raw: &[u8],
        decoded: Result<Header, Invalid>,
        captures: &Captured,
    ) -> Verdict {
        if self.failure.is_some() {
            return Verdict::Failed;
        }
        let seq = self.seq;
        self.seq += 1;
        let decoded = match self.failed.get(&seq) {
            Some(detail) => unprocessable(detail.clone()),
            None => decoded,
        };
        let header = match decoded {
            Ok(header) => header,
            Err(invalid) => {
                if let Some(count) = self.invalid.iter_mut().find(|(r, _)| *r == invalid.reason) {
                    count.1 += 1;
                }
                self.rejected.push(Rejected {
                    position: seq,
                    reason: invalid.reason,
                    detail: invalid.detail.clone(),
                });
                return Verdict::Invalid(invalid);
            }
        };
        let applied = fault::catch(|| {
            if let Some(id) = header.id {
                let horizon = self.engine.horizon.of(header.ts);
                if !self.seen.first_time(id, header.ts, horizon) {
                    return false;
                }
            }
            self.engine.apply(captures, header, seq, self.at_ms);
            fault::check(raw);
            true
        });
        match applied {
            Ok(true) => {
                self.applied += 1;
                self.newest = Some(self.newest.map_or(header.ts, |n| n.max(header.ts)));
                Verdict::Applied(header.ts)
            }
            Ok(false) => {
                self.duplicates += 1;
                Verdict::Duplicate
            }
            Err(detail) => {
                self.failure = Some((seq, detail));
                Verdict::Failed
            }
        }
    }

    /// The input is JSON Lines of about `total` bytes (a file's size), read by `lines`.
    pub fn expect_bytes(&mut self, total: usize) {
        self.expected_bytes = Some(total);
    }

    /// The line (from 1) of the message at `position` (from 0) of the JSON Lines read.
    pub fn line_number(&self, position: i64) -> i64 {
        position + 1 + self.blanks.partition_point(|&before| before <= position) as i64
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

    /// The lines of a JSON Lines chunk (whole lines), blank ones skipped. A large chunk is
    /// decoded by other threads, block by block, while this one applies the blocks in order.
    pub fn lines(&mut self, chunk: &[u8]) {
        let mut lines: Vec<&[u8]> = Vec::with_capacity(chunk.len() / 128);
        let mut start = 0;
        let mut ends = memchr::memchr_iter(b'\n', chunk).peekable();
        while start < chunk.len() {
            let end = ends.next().unwrap_or(chunk.len());
            let line = &chunk[start..end];
            if is_blank(line) {
                self.blanks.push(self.seq + lines.len() as i64);
            } else {
                lines.push(line);
            }
            start = end + 1;
        }
        // Room for the ids of the whole input at once when its size is known (a file), guessed
        // from this first chunk's lines: growing the set step by step copies it each time.
        let expected = match self.expected_bytes.take() {
            Some(total) if !chunk.is_empty() => total.saturating_mul(lines.len()) / chunk.len(),
            _ => lines.len(),
        };
        self.seen.reserve(expected);
        let decoders = self.decoders;
        if decoders == 0 || lines.len() < PARALLEL_FROM_LINES {
            let mut captures = Captures::new();
            for line in lines {
                self.message(line, &mut captures);
            }
            return;
        }
        let paths = Arc::clone(&self.engine.paths);
        let (now, skew) = (self.now_ms, self.max_future_skew_ms);
        let blocks: Vec<&[&[u8]]> = lines.chunks(BLOCK_LINES).collect();
        std::thread::scope(|scope| {
            let mut decoded = Vec::new();
            let mut recycle = Vec::new();
            for d in 0..decoders {
                let (send, receive) = mpsc::sync_channel::<Block>(2);
                let (give_back, take_back) = mpsc::channel::<Block>();
                let (paths, blocks) = (&paths, &blocks);
                scope.spawn(move || {
                    for lines in blocks.iter().skip(d).step_by(decoders) {
                        let mut block = take_back.try_recv().unwrap_or_default();
                        block.decode(paths, lines, now, skew);
                        if send.send(block).is_err() {
                            return;
                        }
                    }
                });
                decoded.push(receive);
                recycle.push(give_back);
            }
            let slots = paths.slots();
            for (index, lines) in blocks.iter().enumerate() {
                let d = index % decoders;
                let block = decoded[d].recv().expect("a decoder ends after its last block");
                let ids = block.results.iter().filter_map(|r| r.as_ref().ok()?.id);
                std::hint::black_box(self.seen.look_ahead(ids));
                for (k, result) in block.results.iter().enumerate() {
                    let captures = &block.captures[k * slots..(k + 1) * slots];
                    self.accept(lines[k], result.clone(), captures);
                }
                let _ = recycle[d].send(block);
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"metrics": [
        {"name": "readers", "segments": ["plan"], "window_ms": 604800000, "bucket_ms": 3600000,
         "entities": {"key": "account_id",
                      "all": [{"event": ["report.viewed"], "distinct": "user_id", "at_least": 2}]}},
        {"name": "records", "window_ms": 604800000, "bucket_ms": 3600000,
         "aggregate": {"sum": "records", "event": "data.received"}}]}"#;

    /// Lines of every sort: repeats of ids, invalid ones, blank ones, events out of order.
    fn chunk(lines: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..lines {
            let id = i % 7_919;
            let hour = (i * 37) % 200;
            let line = match i % 11 {
                0 => "{\"type\": 5}".to_owned(),
                1 => "   ".to_owned(),
                2 | 3 => format!(
                    r#"{{"type":"data.received","timestamp":"2026-01-0{}T{:02}:00:00Z","event_id":"d{id}","records":{}}}"#,
                    1 + hour / 24 % 9,
                    hour % 24,
                    i % 13
                ),
                _ => format!(
                    r#"{{"type":"report.viewed","timestamp":"2026-01-0{}T{:02}:00:00Z","event_id":"e{id}","account_id":"a{}","user_id":"u{}","plan":"p{}"}}"#,
                    1 + hour / 24 % 9,
                    hour % 24,
                    i % 97,
                    i % 5,
                    i % 3
                ),
            };
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn decoding_ahead_in_other_threads_changes_nothing() {
        let spec: CatalogSpec = serde_json::from_str(SPEC).unwrap();
        let data = chunk(3 * PARALLEL_FROM_LINES + 123);
        let run = |decoders: usize| {
            let mut compute =
                Compute::new(&spec, InputFormat::Nsm, None, i64::MAX / 4, 300_000).unwrap();
            compute.decoders = decoders;
            compute.lines(&data);
            let counts = (compute.applied, compute.duplicates, compute.invalid.clone());
            (counts, compute.newest, compute.evaluate())
        };
        let alone = run(0);
        assert!(alone.0 .0 > 0 && alone.0 .1 > 0);
        assert!(alone.0 .2.iter().any(|(_, n)| *n > 0));
        assert!(alone.2.iter().all(|v| v.value.is_some()));
        for decoders in [1, 2, 3] {
            assert_eq!(run(decoders), alone);
        }
    }
}

#[cfg(test)]
mod failures {
    use super::*;

    const SPEC: &str = r#"{"metrics": [
        {"name": "sent", "window_ms": 604800000, "bucket_ms": 3600000,
         "aggregate": {"count": true, "event": "report.sent"}}]}"#;

    fn line(id: &str, extra: &str) -> String {
        format!(
            r#"{{"type":"report.sent","timestamp":"2026-01-01T00:00:00Z","event_id":"{id}"{extra}}}"#
        )
    }

    /// A failure while applying stops the run; run again with it among `failed`, the rest is
    /// exact and the failed message is named with its line.
    #[test]
    fn a_run_that_failed_is_run_again_without_the_message() {
        let _one_at_a_time = fault::TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let spec: CatalogSpec = serde_json::from_str(SPEC).unwrap();
        let marker = ",\"compute-fault\":1";
        let data =
            [line("a", ""), String::new(), line("b", marker), line("c", ""), "{".into()].join("\n");
        let run = |failed: &AHashMap<i64, String>| {
            let mut compute =
                Compute::new(&spec, InputFormat::Nsm, None, i64::MAX / 4, 300_000).unwrap();
            compute.failed = failed.clone();
            fault::inject(Some(marker.as_bytes().to_vec()));
            compute.lines(data.as_bytes());
            fault::inject(None);
            compute
        };
        let first = run(&AHashMap::new());
        let (position, detail) = first.failure.clone().expect("the marked event failed");
        assert_eq!((position, detail.as_str()), (1, "panic: injected fault"));
        let again = run(&[(position, detail)].into_iter().collect());
        assert_eq!(again.failure, None);
        assert_eq!((again.applied, again.duplicates), (2, 0));
        let named: Vec<(i64, i64, Reason)> = again
            .rejected
            .iter()
            .map(|r| (r.position, again.line_number(r.position), r.reason))
            .collect();
        assert_eq!(named, [(1, 3, Reason::Unprocessable), (3, 5, Reason::NotJson)]);
    }
}
