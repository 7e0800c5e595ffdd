//! The Redis step's payloads in msgpack, as processor/store/partition_store.py's script reads
//! them (Redis's Lua unpacks them with cmsgpack), so that Python only passes bytes along.

use rmp::encode;

/// Writing to a Vec cannot fail.
const INFALLIBLE: &str = "writing msgpack to memory";

pub fn array_len(out: &mut Vec<u8>, len: usize) {
    encode::write_array_len(out, u32::try_from(len).expect("an array under 2^32 items"))
        .expect(INFALLIBLE);
}

pub fn str(out: &mut Vec<u8>, bytes: &[u8]) {
    encode::write_str_len(out, u32::try_from(bytes.len()).expect("a string under 4 GiB"))
        .expect(INFALLIBLE);
    out.extend_from_slice(bytes);
}

pub fn int(out: &mut Vec<u8>, value: i64) {
    encode::write_sint(out, value).expect(INFALLIBLE);
}

/// A batch's new event ids as the ids zset member holds them: `[id, horizon, ...]`.
pub fn ids(ids: &[(String, i64)], out: &mut Vec<u8>) {
    out.clear();
    array_len(out, 2 * ids.len());
    for (id, horizon) in ids {
        str(out, id.as_bytes());
        int(out, *horizon);
    }
}
