//! Modified UTF-8 (JVMS 4.4.7): NUL as `C0 80`, supplementary characters as surrogate pairs.

use std::borrow::Cow;

/// Decodes modified UTF-8; borrows when the bytes are plain ASCII-compatible UTF-8.
pub fn decode(b: &[u8]) -> Result<Cow<'_, str>, String> {
    if !b.iter().any(|&c| c == 0xC0 || c == 0xED || c == 0) {
        if let Ok(s) = std::str::from_utf8(b) {
            return Ok(Cow::Borrowed(s));
        }
    }
    let mut units = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as u16;
        let (unit, len) = if c & 0x80 == 0 {
            if c == 0 {
                return Err(format!("NUL byte at {i} in modified UTF-8"));
            }
            (c, 1)
        } else if c & 0xE0 == 0xC0 {
            let c2 = *b.get(i + 1).ok_or("truncated modified UTF-8")? as u16;
            ((c & 0x1F) << 6 | (c2 & 0x3F), 2)
        } else if c & 0xF0 == 0xE0 {
            let c2 = *b.get(i + 1).ok_or("truncated modified UTF-8")? as u16;
            let c3 = *b.get(i + 2).ok_or("truncated modified UTF-8")? as u16;
            ((c & 0x0F) << 12 | (c2 & 0x3F) << 6 | (c3 & 0x3F), 3)
        } else {
            return Err(format!("invalid modified UTF-8 byte {c:#04x} at {i}"));
        };
        units.push(unit);
        i += len;
    }
    // Lone surrogates are legal in class files; keep them visible rather than failing.
    Ok(Cow::Owned(char::decode_utf16(units).map(|r| r.unwrap_or('\u{FFFD}')).collect()))
}

pub fn encode(s: &str) -> Vec<u8> {
    if !s.bytes().any(|c| c == 0 || c >= 0xF0) {
        return s.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(s.len() + 8);
    for unit in s.encode_utf16() {
        match unit {
            1..=0x7F => out.push(unit as u8),
            0 | 0x80..=0x7FF => {
                out.push(0xC0 | (unit >> 6) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                out.push(0xE0 | (unit >> 12) as u8);
                out.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_nul_and_supplementary() {
        for s in ["plain", "nul\0inside", "é", "emoji 😀 here"] {
            let b = encode(s);
            assert_eq!(decode(&b).unwrap(), s);
        }
        assert_eq!(encode("\0"), vec![0xC0, 0x80]);
        assert_eq!(encode("😀").len(), 6);
    }

    #[test]
    fn rejects_raw_nul_and_truncation() {
        assert!(decode(&[b'a', 0]).is_err());
        assert!(decode(&[0xE0, 0x80]).is_err());
    }
}
