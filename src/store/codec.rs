//! Versioned record encoding: one format-version byte, then the record as JSON.
//!
//! Decoding trusts the record's own validation done at write time and does not re-validate
//! cross-field rules; an unknown version byte or undecodable body is reported as
//! [`StoreError::Corrupt`], never a panic.

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::sealing::{self, Sealer};
use super::StoreError;

/// The record format this build writes.
pub(crate) const RECORD_VERSION: u8 = 1;

/// Encodes `record` as `[RECORD_VERSION] ++ json`.
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(256);
    out.push(RECORD_VERSION);
    serde_json::to_writer(&mut out, record).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes a value written by [`encode`]; `table` and `key` name it in the error.
pub(crate) fn decode<T: DeserializeOwned>(
    table: &str,
    key: &dyn Display,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let corrupt = || StoreError::Corrupt { table: table.to_string(), key: key.to_string() };
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => serde_json::from_slice(body).map_err(|_| corrupt()),
        _ => Err(corrupt()),
    }
}

/// [`encode`] on a keyed store: every seed of the record sealed for its slot (see
/// `store::sealing`), so the bytes written hold no seed text.
pub(crate) fn encode_sealed<T: Serialize>(
    record: &T,
    sealer: Sealer<'_>,
) -> Result<Vec<u8>, StoreError> {
    let mut value = serde_json::to_value(record).map_err(|e| StoreError::Encode(e.to_string()))?;
    sealing::seal_tree(sealer, &mut value);
    let out = encode(&value);
    sealing::wipe(value);
    out
}

/// [`decode`] on a keyed store: every sealed seed opened for its slot under the store key.
/// A value that does not open is [`StoreError::Unseal`].
pub(crate) fn decode_sealed<T: DeserializeOwned>(
    sealer: Sealer<'_>,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let mut value: serde_json::Value = decode(sealer.table, &sealer.record, bytes)?;
    if let Err(source) = sealing::open_tree(sealer, &mut value) {
        sealing::wipe(value);
        return Err(StoreError::Unseal {
            table: sealer.table.to_string(),
            key: sealer.record.to_string(),
            source,
        });
    }
    let record = T::deserialize(&value).map_err(|_| StoreError::Corrupt {
        table: sealer.table.to_string(),
        key: sealer.record.to_string(),
    });
    sealing::wipe(value);
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Name, Role};

    #[test]
    fn round_trip_starts_with_the_version_byte() {
        let role = Role::new(Name::parse("r").unwrap(), 5);
        let bytes = encode(&role).unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        let back: Role = decode("roles", &"r", &bytes).unwrap();
        assert_eq!(back, role);
    }

    #[test]
    fn unknown_version_or_garbage_is_corrupt() {
        let role = Role::new(Name::parse("r").unwrap(), 5);
        let mut bytes = encode(&role).unwrap();
        bytes[0] = 2;
        let err = decode::<Role>("roles", &"r", &bytes).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { ref table, ref key } if table == "roles" && key == "r")
        );
        assert!(matches!(decode::<Role>("roles", &"r", &[]), Err(StoreError::Corrupt { .. })));
        assert!(matches!(
            decode::<Role>("roles", &"r", &[1, b'{']),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
