//! Per-bucket entries kept sorted by bucket: what every kind of state is made of.

use crate::codec::{put_int, put_uint, FormatError, Reader};
use crate::window::Span;

/// The entry of `bucket`, made with `new` when missing (events mostly arrive in the newest one).
pub fn entry<T>(entries: &mut Vec<(i64, T)>, bucket: i64, new: impl FnOnce() -> T) -> &mut T {
    let at = match entries.last() {
        Some((last, _)) if *last == bucket => entries.len() - 1,
        Some((last, _)) if *last < bucket => {
            entries.push((bucket, new()));
            entries.len() - 1
        }
        None => {
            entries.push((bucket, new()));
            0
        }
        Some(_) => match entries.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(at) => at,
            Err(at) => {
                entries.insert(at, (bucket, new()));
                at
            }
        },
    };
    &mut entries[at].1
}

/// The entries inside a span.
pub fn within<T>(entries: &[(i64, T)], span: Span) -> &[(i64, T)] {
    let from = entries.partition_point(|(b, _)| *b < span.first);
    let to = entries.partition_point(|(b, _)| *b <= span.last);
    &entries[from..to.max(from)]
}

/// Drop the entries before `first`; true when something was dropped.
pub fn expire<T>(entries: &mut Vec<(i64, T)>, first: i64) -> bool {
    let cut = entries.partition_point(|(b, _)| *b < first);
    entries.drain(..cut);
    cut > 0
}

/// Buckets in increasing order as deltas: the first as a signed varint, each next as the gap.
pub struct BucketWriter {
    previous: Option<i64>,
}

impl BucketWriter {
    pub fn new() -> BucketWriter {
        BucketWriter { previous: None }
    }

    pub fn put(&mut self, out: &mut Vec<u8>, bucket: i64) {
        match self.previous {
            None => put_int(out, bucket),
            Some(previous) => put_uint(out, (bucket - previous) as u64),
        }
        self.previous = Some(bucket);
    }
}

impl Default for BucketWriter {
    fn default() -> Self {
        BucketWriter::new()
    }
}

pub struct BucketReader {
    previous: Option<i64>,
}

impl BucketReader {
    pub fn new() -> BucketReader {
        BucketReader { previous: None }
    }

    pub fn get(&mut self, input: &mut Reader) -> Result<i64, FormatError> {
        let bucket = match self.previous {
            None => input.int()?,
            Some(previous) => previous
                .checked_add_unsigned(input.uint()?)
                .ok_or_else(|| FormatError::new("a stored bucket is out of range"))?,
        };
        self.previous = Some(bucket);
        Ok(bucket)
    }
}

impl Default for BucketReader {
    fn default() -> Self {
        BucketReader::new()
    }
}

/// Entries as stored: their number, then each bucket (as deltas) followed by its value.
pub fn encode<T>(out: &mut Vec<u8>, entries: &[(i64, T)], mut put: impl FnMut(&mut Vec<u8>, &T)) {
    crate::codec::put_uint(out, entries.len() as u64);
    let mut buckets = BucketWriter::new();
    for (bucket, value) in entries {
        buckets.put(out, *bucket);
        put(out, value);
    }
}

/// Read entries written by `encode`, handing each (bucket, value) to `add`.
pub fn decode<T>(
    input: &mut Reader,
    mut get: impl FnMut(&mut Reader) -> Result<T, FormatError>,
    mut add: impl FnMut(i64, T),
) -> Result<(), FormatError> {
    let n = input.len()?;
    let mut buckets = BucketReader::new();
    for _ in 0..n {
        let bucket = buckets.get(input)?;
        add(bucket, get(input)?);
    }
    Ok(())
}

/// A count as stored (counts are capped by their kind; a larger stored one saturates).
pub fn get_count(input: &mut Reader) -> Result<i64, FormatError> {
    Ok(i64::try_from(input.uint()?).unwrap_or(i64::MAX))
}

/// Two pointers over entries for windows that only move forward: what enters and what leaves.
pub struct Slide {
    from: usize,
    to: usize,
}

impl Slide {
    pub fn new() -> Slide {
        Slide { from: 0, to: 0 }
    }

    /// Move to `span`: calls `step(i, 1)` for each entry index entering, `step(i, -1)` for each
    /// leaving (an entry passed over before the window reaches it enters and leaves at once).
    pub fn advance<T>(
        &mut self,
        entries: &[(i64, T)],
        span: Span,
        mut step: impl FnMut(usize, i64),
    ) {
        while self.to < entries.len() && entries[self.to].0 <= span.last {
            step(self.to, 1);
            self.to += 1;
        }
        while self.from < self.to && entries[self.from].0 < span.first {
            step(self.from, -1);
            self.from += 1;
        }
    }
}

impl Default for Slide {
    fn default() -> Self {
        Slide::new()
    }
}
