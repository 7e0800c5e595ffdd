//! Buckets and rolling windows (CONTRACT §3): an event belongs to bucket `floor(ts / bucket)`,
//! aligned to the epoch; the window as of T holds the buckets `[k - n + 1, k]`, `k = floor(T /
//! bucket)`. An event whose bucket has left the window as of the clock is late.

/// A metric's bucket size and window length in buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub bucket_ms: i64,
    pub buckets: i64,
}

/// The buckets of a window, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub first: i64,
    pub last: i64,
}

impl Span {
    pub fn contains(&self, bucket: i64) -> bool {
        self.first <= bucket && bucket <= self.last
    }
}

impl Window {
    pub fn bucket(&self, ms: i64) -> i64 {
        ms.div_euclid(self.bucket_ms)
    }

    /// The window as of `ms`.
    pub fn span(&self, ms: i64) -> Span {
        let last = self.bucket(ms);
        Span { first: last - self.buckets + 1, last }
    }

    /// Where the window as of `ms` starts: its first bucket's start.
    pub fn start_ms(&self, ms: i64) -> i64 {
        self.span(ms).first.saturating_mul(self.bucket_ms)
    }

    /// True when an event at `ts` is before the window as of `clock`.
    pub fn is_late(&self, ts: i64, clock: i64) -> bool {
        self.bucket(ts) < self.span(clock).first
    }

    /// When a bucket has left every window (the start of the first window without it).
    pub fn leaves_at(&self, bucket: i64) -> i64 {
        (bucket + self.buckets).saturating_mul(self.bucket_ms)
    }
}

/// When an event's id may repeat without being a duplicate (docs/semantics.md, Dedup): the time
/// the event leaves the last window it is in, the largest over every metric of
/// `(floor(ts / bucket) + n) × bucket`; one term per bucket size (its longest window).
#[derive(Clone, Debug, Default)]
pub struct Horizon {
    terms: Vec<(i64, i64)>,
}

impl Horizon {
    pub fn new(windows: impl IntoIterator<Item = Window>) -> Horizon {
        let mut terms: Vec<(i64, i64)> = Vec::new();
        for w in windows {
            match terms.iter_mut().find(|(b, _)| *b == w.bucket_ms) {
                Some(term) => term.1 = term.1.max(w.buckets),
                None => terms.push((w.bucket_ms, w.buckets)),
            }
        }
        Horizon { terms }
    }

    /// A horizon of given terms (bucket ms, longest window in buckets of that size).
    pub fn of_terms(terms: &[(i64, i64)]) -> Horizon {
        Horizon::new(
            terms
                .iter()
                .map(|(bucket_ms, buckets)| Window { bucket_ms: *bucket_ms, buckets: *buckets }),
        )
    }

    pub fn terms(&self) -> &[(i64, i64)] {
        &self.terms
    }

    /// The horizon of an event at `ts` (computed exactly, then held within 64 bits: no event
    /// time comes near either end).
    pub fn of(&self, ts: i64) -> i64 {
        let ts = i128::from(ts);
        let mut horizon: Option<i128> = None;
        for (b, n) in &self.terms {
            let (b, n) = (i128::from(*b), i128::from(*n));
            let term = (ts.div_euclid(b) + n) * b;
            horizon = Some(horizon.map_or(term, |h| h.max(term)));
        }
        let horizon = horizon.unwrap_or(ts + 1);
        horizon.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The longest window over every metric, in ms.
    pub fn longest_window_ms(&self) -> i64 {
        self.terms.iter().map(|(b, n)| b * n).max().unwrap_or(0)
    }

    /// Ids whose horizon is at or before this may be forgotten at `clock` (docs/semantics.md,
    /// Dedup): two longest windows back, so that a repeat that gives an id anew cannot reach a
    /// window that is still evaluated.
    pub fn forget_until(&self, clock: i64) -> i64 {
        clock - 2 * self.longest_window_ms() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_lateness() {
        let w = Window { bucket_ms: 10, buckets: 3 };
        assert_eq!(w.span(25), Span { first: 0, last: 2 });
        assert_eq!(w.span(-1), Span { first: -3, last: -1 });
        assert!(w.is_late(-1, 25));
        assert!(!w.is_late(0, 29));
        assert_eq!(w.leaves_at(2), 50);
    }

    #[test]
    fn horizon_is_the_latest_window_end() {
        let h = Horizon::new([
            Window { bucket_ms: 10, buckets: 3 },
            Window { bucket_ms: 100, buckets: 1 },
        ]);
        assert_eq!(h.of(25), 100);
        assert_eq!(h.of(95), 120);
        assert_eq!(Horizon::default().of(5), 6);
        assert_eq!(h.of(i64::MAX), i64::MAX);
    }
}
