//! JSON output byte-compatible with Go's `encoding/json`.
//!
//! Go escapes `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026` and the line separators U+2028 and
//! U+2029 as `\u2028`, `\u2029`; serde_json does neither. The jti hashes the JSON text, so names
//! containing those characters only get Go's jti when written Go's way.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// A compact formatter that additionally escapes what Go's `encoding/json` escapes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let bytes = fragment.as_bytes();
        // Most fragments (keys, names, subjects) need no Go-only escape: one scan, one write.
        if !bytes.iter().any(|&b| matches!(b, b'<' | b'>' | b'&' | 0xE2)) {
            return writer.write_all(bytes);
        }
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let (escape, len): (&[u8], usize) = match bytes[i] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                0xE2 if bytes[i + 1..].starts_with(&[0x80, 0xA8]) => (b"\\u2028", 3),
                0xE2 if bytes[i + 1..].starts_with(&[0x80, 0xA9]) => (b"\\u2029", 3),
                _ => {
                    i += 1;
                    continue;
                }
            };
            writer.write_all(&bytes[start..i])?;
            writer.write_all(escape)?;
            i += len;
            start = i;
        }
        writer.write_all(&bytes[start..])
    }
}

/// Appends the Go-style JSON of `value` to `buf`.
pub(crate) fn write_go_json<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), serde_json::Error> {
    let mut ser = serde_json::Serializer::with_formatter(buf, GoFormatter);
    value.serialize(&mut ser)
}

/// Serde helper: true for 0, so `skip_serializing_if` mirrors Go's `omitempty` on integers.
pub(crate) fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Serde helper: true for `false`, mirroring Go's `omitempty` on booleans.
pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let mut buf = Vec::new();
        write_go_json(&mut buf, "a<b>&c\u{2028}d\u{2029}é\"\n").unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), r#""a\u003cb\u003e\u0026c\u2028d\u2029é\"\n""#);
    }

    #[test]
    fn plain_strings_are_unchanged() {
        let mut buf = Vec::new();
        write_go_json(&mut buf, &["$SYS.>", "plain"]).unwrap();
        assert_eq!(buf, br#"["$SYS.\u003e","plain"]"#);
        // A three-byte character that starts like U+2028 but is not it.
        let mut buf = Vec::new();
        write_go_json(&mut buf, "a\u{2192}b").unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "\"a\u{2192}b\"");
    }
}
