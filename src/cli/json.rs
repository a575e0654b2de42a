//! The pieces of a JSON writer for the records `watch` and `trace` stream (hundreds of thousands
//! a second): appended to one reusable buffer, byte for byte what `serde_json` writes for the
//! same values, without its per-field dispatch.

/// What a byte of a string becomes, as `serde_json` escapes it: 0 for itself, `u` for `\u00XX`,
/// else the letter after the backslash.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// `s` as a JSON string: quotes, backslashes and control characters escaped (`\n`, `\u001f`),
/// everything else (non-ASCII included) as it is.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if !needs_escaping(bytes) {
        out.extend_from_slice(bytes);
    } else {
        escaped(out, bytes);
    }
    out.push(b'"');
}

/// Whether any of `bytes` is a quote, a backslash or a control character: eight bytes at a time
/// (windows that may overlap), as most strings have nothing to escape.
fn needs_escaping(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // the high bit of a byte of the result is set if that byte of `w` is below 0x20, or equals
    // `"` or `\` (no false negatives; false positives cost only the exact path)
    let flagged = |w: u64| {
        let below_space = w.wrapping_sub(ONES * 0x20);
        let quote = (w ^ (ONES * b'"' as u64)).wrapping_sub(ONES);
        let backslash = (w ^ (ONES * b'\\' as u64)).wrapping_sub(ONES);
        (below_space | quote | backslash) & !w & HIGH != 0
    };
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| ESCAPE[b as usize] != 0);
    }
    bytes.chunks_exact(8).any(|c| flagged(word(c))) || flagged(word(&bytes[bytes.len() - 8..]))
}

/// The bytes of a string that has something to escape, escaped.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if escape == b'u' {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

/// `n` in decimal.
pub fn uint(out: &mut Vec<u8>, mut n: u64) {
    // two digits at a time, from the last
    const PAIRS: [u8; 200] = {
        let mut pairs = [0u8; 200];
        let mut i = 0;
        while i < 100 {
            pairs[2 * i] = b'0' + (i / 10) as u8;
            pairs[2 * i + 1] = b'0' + (i % 10) as u8;
            i += 1;
        }
        pairs
    };
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// `true` or `false`.
pub fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// `items` as a JSON array of strings.
pub fn strings(out: &mut Vec<u8>, items: &[&str]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s);
    }
    out.push(b']');
}

/// A map's entries as a JSON object, in their order (the order `serde_json` writes a map in: its
/// iteration order).
pub fn map(out: &mut Vec<u8>, entries: &[(&str, &str)]) {
    out.push(b'{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, k);
        out.push(b':');
        string(out, v);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for s in [
            "",
            "plain",
            "\"",
            "\\",
            "a\"b\\c\"",
            "\n\r\t\u{8}\u{c}",
            "\u{0}\u{1}\u{1f}\u{7f}",
            "é ü 漢字 🦀 \u{2028}\u{2029}",
            "ends with \u{1b}",
            &every_ascii,
        ] {
            assert_eq!(written(|o| string(o, s)), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn a_character_to_escape_is_found_at_any_place_of_a_string_of_any_length() {
        let to_escape = (0u8..0x20).map(char::from).chain(['"', '\\']);
        let not_to_escape = [' ', '!', '#', '[', ']', '~', '\u{7f}', 'é', '\u{a2}', '\u{5c5c}', '🦀'];
        for c in to_escape.chain(not_to_escape) {
            for fill in ['a', 'é', '\u{2222}'] {
                for len in 1..24 {
                    for at in 0..len {
                        let s: String = (0..len).map(|i| if i == at { c } else { fill }).collect();
                        assert_eq!(written(|o| string(o, &s)), serde_json::to_string(&s).unwrap(), "{s:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn numbers_booleans_arrays_and_maps_are_written_as_serde_json_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), 1 << 53, u64::MAX - 1, u64::MAX] {
            assert_eq!(written(|o| uint(o, n)), serde_json::to_string(&n).unwrap());
        }
        assert_eq!(written(|o| boolean(o, true)), "true");
        assert_eq!(written(|o| boolean(o, false)), "false");
        let items = ["", "a\"", "\u{0}"];
        assert_eq!(written(|o| strings(o, &items)), serde_json::to_string(&items).unwrap());
        assert_eq!(written(|o| strings(o, &[])), "[]");
        let values: std::collections::HashMap<String, String> =
            (0..20).map(|i| (format!("k{i}\"\\"), format!("v\n{i}"))).collect();
        let entries: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(written(|o| map(o, &entries)), serde_json::to_string(&values).unwrap());
        assert_eq!(written(|o| map(o, &[])), "{}");
    }
}
