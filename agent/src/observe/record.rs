//! The bytes a captured call is queued as. The application's thread writes each watched or traced
//! call into a buffer of its own (reused: nothing is allocated per call) and copies the finished
//! record into the observation's queue, one byte buffer that the stream takes whole and hands
//! back empty; the stream decodes and renders. Allocating a call's values instead (and freeing
//! them on the stream's thread) was a third of what a watched call cost the application.
//!
//! A record is a kind byte and its fields, little-endian: the fields are written and read here,
//! the layout of each kind in `observe`, in one process. A record that does not decode is a bug,
//! skipped (never a panic).

use repair_model::observe::Value;

use crate::jvm::PlainValue;

/// What a record holds (its first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A watched call: see [`Captured`](super::Captured).
    Call = 1,
    /// A traced call and the calls it made.
    Trace = 2,
    /// Any other message, protobuf-encoded (`proto::Observed`): windows, paths, notices, ...
    Report = 3,
}

impl Kind {
    fn of(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Call,
            2 => Kind::Trace,
            3 => Kind::Report,
            _ => return None,
        })
    }
}

/// Value tags.
const NULL: u8 = 0;
const BOOL: u8 = 1;
const INTEGER: u8 = 2;
const NUMBER: u8 = 3;
const TEXT: u8 = 4;
const OBJECT: u8 = 5;
/// A string as the JVM holds it (UTF-16 units), and whether it was cut: decoded by the stream.
const UTF16: u8 = 6;

/// Appends fields to a record.
pub trait Put {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
    /// Text of at most `u32::MAX` bytes (longer is cut).
    fn str(&mut self, s: &str);
    fn value(&mut self, v: &Value);
    fn plain(&mut self, v: &PlainValue<'_>);
    /// Overwrites the `u32` at `at` (a field written before its value was known).
    fn set_u32(&mut self, at: usize, v: u32);
    fn set_u64(&mut self, at: usize, v: u64);
}

impl Put for Vec<u8> {
    fn u8(&mut self, v: u8) {
        self.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        let n = s.len().min(u32::MAX as usize);
        self.u32(n as u32);
        self.extend_from_slice(&s.as_bytes()[..n]);
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.u8(NULL),
            Value::Bool(b) => self.extend_from_slice(&[BOOL, u8::from(*b)]),
            Value::Integer(n) => {
                self.u8(INTEGER);
                self.u64(*n as u64);
            }
            Value::Number(n) => {
                self.u8(NUMBER);
                self.u64(n.to_bits());
            }
            Value::Text(s) => {
                self.u8(TEXT);
                self.str(s);
            }
            Value::Object(s) => {
                self.u8(OBJECT);
                self.str(s);
            }
        }
    }
    fn plain(&mut self, v: &PlainValue<'_>) {
        match *v {
            PlainValue::Bool(b) => self.extend_from_slice(&[BOOL, u8::from(b)]),
            PlainValue::Integer(n) => {
                self.u8(INTEGER);
                self.u64(n as u64);
            }
            PlainValue::Number(n) => {
                self.u8(NUMBER);
                self.u64(n.to_bits());
            }
            PlainValue::Text { units, cut } => {
                let n = units.len().min(u16::MAX as usize);
                self.u8(UTF16);
                self.u16(n as u16);
                // Sized first, then filled: a loop the compiler turns into a copy.
                let at = self.len();
                self.resize(at + 2 * n, 0);
                for (to, u) in self[at..].chunks_exact_mut(2).zip(&units[..n]) {
                    to.copy_from_slice(&u.to_le_bytes());
                }
                self.u8(u8::from(cut));
            }
        }
    }
    fn set_u32(&mut self, at: usize, v: u32) {
        if let Some(b) = self.get_mut(at..at + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn set_u64(&mut self, at: usize, v: u64) {
        if let Some(b) = self.get_mut(at..at + 8) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Reads the records of a queue's bytes, in order.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, at: 0 }
    }

    pub fn at(&self) -> usize {
        self.at
    }

    /// The kind of the next record, without taking it.
    pub fn peek_kind(&self) -> Option<Kind> {
        Kind::of(*self.bytes.get(self.at)?)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(b)
    }

    pub fn kind(&mut self) -> Option<Kind> {
        Kind::of(self.u8()?)
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        self.take(n)
    }

    pub fn str(&mut self) -> Option<String> {
        Some(String::from_utf8_lossy(self.text()?).into_owned())
    }

    /// The bytes of the next text field, as written (the stream's own records: UTF-8).
    pub fn text(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// The next value's text as the stream shows it ([`Value::shown`]).
    #[cfg(test)]
    pub fn shown(&mut self) -> Option<String> {
        let mut text = Vec::new();
        self.shown_into(&mut text)?;
        String::from_utf8(text).ok()
    }

    /// Appends the next value's text as the stream shows it ([`Value::shown`]); a string of plain
    /// characters goes from its UTF-16 units to its quoted text in one step. Nothing is appended
    /// when the value does not decode.
    pub fn shown_into(&mut self, out: &mut Vec<u8>) -> Option<()> {
        if self.bytes.get(self.at) == Some(&UTF16) {
            let (start, written) = (self.at, out.len());
            self.at += 1;
            let n = self.u16()? as usize;
            let units = self.take(2 * n)?;
            let cut = self.u8()? != 0;
            let plain = |u: u16| (0x20..0x7f).contains(&u) && u != u16::from(b'"') && u != u16::from(b'\\');
            out.reserve(n + 5);
            out.push(b'"');
            for c in units.chunks_exact(2) {
                let u = u16::from_le_bytes([c[0], c[1]]);
                if !plain(u) {
                    // Escapes, or characters beyond ASCII: as `Value::shown` writes them.
                    out.truncate(written);
                    self.at = start;
                    out.extend_from_slice(self.value()?.shown().as_bytes());
                    return Some(());
                }
                out.push(u as u8);
            }
            if cut {
                out.extend_from_slice(b"...");
            }
            out.push(b'"');
            return Some(());
        }
        if self.bytes.get(self.at) == Some(&INTEGER) {
            self.at += 1;
            out.extend_from_slice(itoa::Buffer::new().format(self.u64()? as i64).as_bytes());
            return Some(());
        }
        out.extend_from_slice(self.value()?.shown().as_bytes());
        Some(())
    }

    pub fn value(&mut self) -> Option<Value> {
        Some(match self.u8()? {
            NULL => Value::Null,
            BOOL => Value::Bool(self.u8()? != 0),
            INTEGER => Value::Integer(self.u64()? as i64),
            NUMBER => Value::Number(f64::from_bits(self.u64()?)),
            TEXT => Value::Text(self.str()?),
            OBJECT => Value::Object(self.str()?),
            UTF16 => {
                let n = self.u16()? as usize;
                let units: Vec<u16> =
                    self.take(2 * n)?.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                let mut text = String::from_utf16_lossy(&units);
                if self.u8()? != 0 {
                    text.push_str("...");
                }
                Value::Text(text)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_fields_read_back_as_written() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Integer(i64::MIN),
            Value::Integer(-1),
            Value::Number(-0.5),
            Value::Text("päär \"x\"".into()),
            Value::Object("<com.shop.Cart>".into()),
            Value::Text(String::new()),
        ];
        let mut b = Vec::new();
        b.u8(Kind::Call as u8);
        for v in &values {
            b.value(v);
        }
        let units: Vec<u16> = "kiwi é".encode_utf16().collect();
        b.plain(&PlainValue::Text { units: &units, cut: false });
        b.plain(&PlainValue::Text { units: &units[..2], cut: true });
        b.plain(&PlainValue::Integer(7));
        b.plain(&PlainValue::Number(2.5));
        b.plain(&PlainValue::Bool(true));
        let at = b.len();
        b.u64(0);
        b.u32(0);
        b.set_u64(at, 99);
        b.set_u32(at + 8, 5);
        b.str("end");

        let mut c = Cursor::new(&b);
        assert_eq!(c.peek_kind(), Some(Kind::Call));
        assert_eq!(c.kind(), Some(Kind::Call));
        for v in &values {
            assert_eq!(c.value().as_ref(), Some(v));
        }
        assert_eq!(c.value(), Some(Value::Text("kiwi é".into())));
        assert_eq!(c.value(), Some(Value::Text("ki...".into())));
        assert_eq!(c.value(), Some(Value::Integer(7)));
        assert_eq!(c.value(), Some(Value::Number(2.5)));
        assert_eq!(c.value(), Some(Value::Bool(true)));
        assert_eq!((c.u64(), c.u32()), (Some(99), Some(5)));
        assert_eq!(c.str().as_deref(), Some("end"));
        assert_eq!(c.at(), b.len());
        assert_eq!(c.u8(), None, "past the end reads nothing, never panics");
    }

    #[test]
    fn shown_text_is_what_value_shown_gives() {
        let texts = ["kiwi", "", "say \"hi\"", "back\\slash", "tab\there", "päär", "日本", "\u{1}"];
        for text in texts {
            for cut in [false, true] {
                let units: Vec<u16> = text.encode_utf16().collect();
                let mut b = Vec::new();
                b.plain(&PlainValue::Text { units: &units, cut });
                b.value(&Value::Integer(-3));
                b.value(&Value::Integer(i64::MIN));
                let mut c = Cursor::new(&b);
                let expected = PlainValue::Text { units: &units, cut }.to_value().shown();
                assert_eq!(c.shown(), Some(expected), "{text:?} cut {cut}");
                assert_eq!(c.shown().as_deref(), Some("-3"), "and the next value after it");
                assert_eq!(c.shown(), Some(i64::MIN.to_string()));
            }
        }
    }

    #[test]
    fn a_cut_record_reads_as_nothing() {
        let mut b = Vec::new();
        b.value(&Value::Text("a long text".into()));
        for n in 0..b.len() {
            assert_eq!(Cursor::new(&b[..n]).value(), None, "{n} bytes");
        }
        assert_eq!(Cursor::new(&[9]).value(), None, "an unknown tag");
    }
}
