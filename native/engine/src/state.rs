//! The stored form of a partition's state, format 2 (docs/state.md).
//!
//! - One record per entity for all its metrics: the field `<key field><label>` of the
//!   partition's entity hash, holding the format byte and then, per metric, its stored id and its
//!   state (entities.rs, condition/). One key field's metrics share records.
//! - Aggregates: one field per stored item (a bucket of a count or sum, a label of a distinct)
//!   of the partition's aggregate hash, `<metric id><item key>`.
//! - Event ids kept for dedup, one blob per batch: the format byte, then groups of ids sharing a
//!   horizon, each the horizon, the number of ids and their 128-bit hashes (16 bytes each).
//!
//! Metric ids are small integers the partition's meta hash assigns to a definition version, so a
//! changed definition's state is never read as the new one's.

use crate::codec::{put_bytes, put_int, put_str, put_uint, FormatError, Reader};
use crate::event::EventId;

/// The format written, stored in each record, ids blob and the partition's meta.
pub const FORMAT: u8 = 2;

/// The field of an entity's record: its key field's name, then its label.
pub fn record_key(key_field: &str, label: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(key_field.len() + label.len() + 2);
    put_str(&mut key, key_field);
    key.extend_from_slice(label.as_bytes());
    key
}

/// The key field and label of a record's field.
pub fn split_record_key(key: &[u8]) -> Result<(&str, &str), FormatError> {
    let mut reader = Reader::new(key);
    let field = reader.str()?;
    let label = std::str::from_utf8(reader.rest())
        .map_err(|_| FormatError::new("a stored entity label is not UTF-8"))?;
    Ok((field, label))
}

/// The metric parts of a record: (stored metric id, state bytes), after checking its format.
pub fn record_parts(value: &[u8]) -> Result<Vec<(u32, &[u8])>, FormatError> {
    let mut reader = Reader::new(value);
    check_format(reader.byte()?)?;
    let mut parts = Vec::new();
    while !reader.is_empty() {
        let id = u32::try_from(reader.uint()?)
            .map_err(|_| FormatError::new("a stored metric id is out of range"))?;
        parts.push((id, reader.bytes()?));
    }
    Ok(parts)
}

pub fn check_format(format: u8) -> Result<(), FormatError> {
    if format == FORMAT {
        Ok(())
    } else {
        Err(FormatError::new(format!(
            "stored state of format {format}, this version reads format {FORMAT} (and migrates \
             the first): upgrade NSM to read it"
        )))
    }
}

/// A record from its metric parts (None when there is none: the record is deleted).
pub fn record(parts: &[(u32, Vec<u8>)]) -> Option<Vec<u8>> {
    if parts.is_empty() {
        return None;
    }
    let mut out = vec![FORMAT];
    for (id, state) in parts {
        put_uint(&mut out, u64::from(*id));
        put_bytes(&mut out, state);
    }
    Some(out)
}

/// The field of an aggregate's stored item.
pub fn aggregate_key(metric_id: u32, item: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(item.len() + 2);
    put_uint(&mut key, u64::from(metric_id));
    key.extend_from_slice(item);
    key
}

pub fn split_aggregate_key(key: &[u8]) -> Result<(u32, &[u8]), FormatError> {
    let mut reader = Reader::new(key);
    let id = u32::try_from(reader.uint()?)
        .map_err(|_| FormatError::new("a stored metric id is out of range"))?;
    Ok((id, reader.rest()))
}

/// A batch's event ids with their horizons, grouped by horizon.
pub fn pack_ids(ids: &[(EventId, i64)]) -> Vec<u8> {
    let mut sorted: Vec<&(EventId, i64)> = ids.iter().collect();
    sorted.sort_unstable_by_key(|(_, horizon)| *horizon);
    let mut out = Vec::with_capacity(1 + ids.len() * 16 + 16);
    out.push(FORMAT);
    for group in sorted.chunk_by(|a, b| a.1 == b.1) {
        put_int(&mut out, group[0].1);
        put_uint(&mut out, group.len() as u64);
        for (id, _) in group {
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    out
}

pub fn unpack_ids(packed: &[u8]) -> Result<Vec<(EventId, i64)>, FormatError> {
    let mut reader = Reader::new(packed);
    check_format(reader.byte()?)?;
    let mut ids = Vec::new();
    while !reader.is_empty() {
        let horizon = reader.int()?;
        let n = reader.len()?;
        for _ in 0..n {
            let mut bytes = [0u8; 16];
            for b in &mut bytes {
                *b = reader.byte()?;
            }
            ids.push((EventId::from_le_bytes(bytes), horizon));
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ids_round_trip() {
        let key = record_key("account_id", "acc:1\u{e9}");
        assert_eq!(split_record_key(&key).unwrap(), ("account_id", "acc:1\u{e9}"));
        let ids = vec![(7u128, 100), (u128::MAX, 50), (3, 100)];
        let mut back = unpack_ids(&pack_ids(&ids)).unwrap();
        back.sort_unstable();
        assert_eq!(back, vec![(3, 100), (7, 100), (u128::MAX, 50)]);
        // 16 bytes per id, a few per horizon.
        assert!(pack_ids(&ids).len() <= 1 + 3 * 16 + 2 * 6);
        let parts = vec![(3u32, vec![1, 2]), (300, vec![])];
        let stored = record(&parts).unwrap();
        assert_eq!(record_parts(&stored).unwrap(), vec![(3, &[1u8, 2][..]), (300, &[][..])]);
        assert!(record_parts(&[9]).is_err());
        assert!(record(&[]).is_none());
    }
}
