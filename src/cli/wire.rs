//! A protobuf wire reader for the messages `watch` streams (hundreds of thousands of calls a
//! second): an `Observed` holding watched calls is walked in place, each `ObservedCall` read as a
//! [`CallView`] of borrowed strings, where prost would allocate a message and its strings per
//! call. Anything else is left to prost. Fields are read as prost reads them: in any order, the
//! last of a repeated scalar winning, unknown fields skipped.

use crate::proto;
use crate::proto::field::{map_entry, observed, observed_call, observed_calls};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const GROUP_START: u8 = 3;
const GROUP_END: u8 = 4;
const FIXED32: u8 = 5;

/// How deep groups may nest in a skipped field (prost's limit for nested messages).
const RECURSION_LIMIT: u32 = 100;

/// A watched call: its fields borrowed from the message it came in (or from a decoded
/// `proto::ObservedCall`), `args` and `values` in the order they came.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallView<'a> {
    pub thread: &'a str,
    pub start_ms: u64,
    pub duration_ns: u64,
    pub args: Vec<&'a str>,
    pub returned: &'a str,
    pub thrown: &'a str,
    pub method: &'a str,
    pub values: Vec<(&'a str, &'a str)>,
    pub this: &'a str,
}

impl<'a> CallView<'a> {
    /// A decoded call as a view (the map in its own iteration order).
    pub fn of(c: &'a proto::ObservedCall) -> CallView<'a> {
        CallView {
            thread: &c.thread,
            start_ms: c.start_ms,
            duration_ns: c.duration_ns,
            args: c.args.iter().map(String::as_str).collect(),
            returned: &c.returned,
            thrown: &c.thrown,
            method: &c.method,
            values: c.values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            this: &c.this,
        }
    }

    /// An empty view that keeps this one's `args` and `values` allocations, for borrows of
    /// another message: the vectors are empty, and collecting an emptied vector's `into_iter`
    /// into a vector of the same layout reuses its allocation (std's in-place collect).
    pub fn recycle<'b>(self) -> CallView<'b> {
        let (mut args, mut values) = (self.args, self.values);
        args.clear();
        values.clear();
        CallView {
            args: args.into_iter().map(|_| "").collect(),
            values: values.into_iter().map(|_| ("", "")).collect(),
            ..CallView::default()
        }
    }
}

/// What an `Observed` message holds, as far as the wire path cares.
pub enum Observed<'a> {
    /// Watched calls (`call` or `calls`): [`Observed::next_call`] gives each one's bytes.
    Calls { observation: u64, dropped: u64, calls: Calls<'a> },
    /// Anything else (or a message whose `what` appears more than once, which prost merges):
    /// to be decoded by prost.
    Other,
}

/// The encoded `ObservedCall`s of one message, in order.
pub struct Calls<'a> {
    /// `Some` for a single `call` not yet given.
    one: Option<&'a [u8]>,
    /// The rest of an `ObservedCalls`' bytes.
    batch: Reader<'a>,
}

impl<'a> Calls<'a> {
    /// The next call's bytes, `None` after the last.
    pub fn next_call(&mut self) -> Result<Option<&'a [u8]>, String> {
        if let Some(one) = self.one.take() {
            return Ok(Some(one));
        }
        while !self.batch.done() {
            let (field, wire) = self.batch.key()?;
            if field == observed_calls::CALLS {
                return self.batch.len_delimited(wire, "ObservedCalls.calls").map(Some);
            }
            self.batch.skip(field, wire, 0)?;
        }
        Ok(None)
    }
}

/// Reads the top level of an `Observed` message: its observation, dropped count and, when it
/// holds watched calls, where they are.
pub fn observed(message: &[u8]) -> Result<Observed<'_>, String> {
    let mut r = Reader::new(message, "Observed");
    let (mut observation, mut dropped) = (0, 0);
    let mut what: Option<(u32, &[u8])> = None;
    let mut whats = 0;
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            observed::OBSERVATION => observation = r.varint_field(wire, "Observed.observation")?,
            observed::DROPPED => dropped = r.varint_field(wire, "Observed.dropped")?,
            f if observed::WHAT.contains(&f) => {
                whats += 1;
                what = if wire == LEN { Some((f, r.len_delimited(wire, "Observed.what")?)) } else { None };
                if what.is_none() {
                    r.skip(field, wire, 0)?;
                }
            }
            _ => r.skip(field, wire, 0)?,
        }
    }
    Ok(match what {
        Some((observed::CALL, bytes)) if whats == 1 => {
            Observed::Calls { observation, dropped, calls: Calls { one: Some(bytes), batch: Reader::new(&[], "") } }
        }
        Some((observed::CALLS, bytes)) if whats == 1 => Observed::Calls {
            observation,
            dropped,
            calls: Calls { one: None, batch: Reader::new(bytes, "ObservedCalls") },
        },
        _ => Observed::Other,
    })
}

/// Reads an encoded `ObservedCall` into `into` (cleared first, its vectors' room kept).
pub fn call<'a>(message: &'a [u8], into: &mut CallView<'a>) -> Result<(), String> {
    let (mut args, mut values) = (std::mem::take(&mut into.args), std::mem::take(&mut into.values));
    args.clear();
    values.clear();
    *into = CallView { args, values, ..CallView::default() };
    let mut r = Reader::new(message, "ObservedCall");
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            observed_call::THREAD => into.thread = r.string(wire, "ObservedCall.thread")?,
            observed_call::START_MS => into.start_ms = r.varint_field(wire, "ObservedCall.start_ms")?,
            observed_call::DURATION_NS => into.duration_ns = r.varint_field(wire, "ObservedCall.duration_ns")?,
            observed_call::ARGS => into.args.push(r.string(wire, "ObservedCall.args")?),
            observed_call::RETURNED => into.returned = r.string(wire, "ObservedCall.returned")?,
            observed_call::THROWN => into.thrown = r.string(wire, "ObservedCall.thrown")?,
            observed_call::METHOD => into.method = r.string(wire, "ObservedCall.method")?,
            observed_call::VALUES => {
                let (key, value) = entry(r.len_delimited(wire, "ObservedCall.values")?)?;
                // a key seen again replaces the value, as a map insert does
                match into.values.iter_mut().find(|(k, _)| *k == key) {
                    Some(kv) => kv.1 = value,
                    None => into.values.push((key, value)),
                }
            }
            observed_call::THIS => into.this = r.string(wire, "ObservedCall.this")?,
            _ => r.skip(field, wire, 0)?,
        }
    }
    Ok(())
}

/// A `map<string, string>` entry: key 1, value 2, each empty when absent.
fn entry(message: &[u8]) -> Result<(&str, &str), String> {
    let mut r = Reader::new(message, "ObservedCall.values entry");
    let (mut key, mut value) = ("", "");
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            map_entry::KEY => key = r.string(wire, "ObservedCall.values key")?,
            map_entry::VALUE => value = r.string(wire, "ObservedCall.values value")?,
            _ => r.skip(field, wire, 0)?,
        }
    }
    Ok((key, value))
}

/// A cursor over one message's bytes; its errors name the message and the byte where reading
/// failed.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], message: &'static str) -> Reader<'a> {
        Reader { bytes, at: 0, message }
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    #[cold]
    fn error(&self, what: &str) -> String {
        format!("{} message of {} bytes, at byte {}: {what}", self.message, self.bytes.len(), self.at)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, String> {
        // most are one byte: field keys, lengths of short strings
        if let Some(&b) = self.bytes.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(u64::from(b));
            }
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err(self.error("cut short inside a varint"));
            };
            self.at += 1;
            // the tenth byte holds the 64th bit only
            if i == 9 && b > 1 {
                return Err(self.error("a varint longer than 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error("a varint longer than 10 bytes"))
    }

    /// A field's number and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8), String> {
        let key = self.varint()?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(self.error(&format!("field number {field} is out of range")));
        }
        if wire > FIXED32 {
            return Err(self.error(&format!("invalid wire type {wire} of field {field}")));
        }
        Ok((field as u32, wire))
    }

    #[inline]
    fn varint_field(&mut self, wire: u8, name: &str) -> Result<u64, String> {
        if wire != VARINT {
            return Err(self.error(&format!("{name} has wire type {wire}, not a varint")));
        }
        self.varint()
    }

    #[inline]
    fn len_delimited(&mut self, wire: u8, name: &str) -> Result<&'a [u8], String> {
        if wire != LEN {
            return Err(self.error(&format!("{name} has wire type {wire}, not length-delimited")));
        }
        let len = self.varint()?;
        let rest = self.bytes.len() - self.at;
        if len > rest as u64 {
            return Err(self.error(&format!("{name} of {len} bytes is cut short ({rest} left)")));
        }
        let bytes = &self.bytes[self.at..self.at + len as usize];
        self.at += len as usize;
        Ok(bytes)
    }

    #[inline]
    fn string(&mut self, wire: u8, name: &str) -> Result<&'a str, String> {
        let start = self.at;
        let bytes = self.len_delimited(wire, name)?;
        std::str::from_utf8(bytes).map_err(|e| {
            self.at = start;
            self.error(&format!("{name} is not UTF-8 ({e})"))
        })
    }

    fn fixed(&mut self, n: usize) -> Result<(), String> {
        if self.bytes.len() - self.at < n {
            return Err(self.error(&format!("cut short inside a {n}-byte field")));
        }
        self.at += n;
        Ok(())
    }

    /// Skips an unknown field (a group with all it holds, groups nested up to prost's limit).
    fn skip(&mut self, field: u32, wire: u8, depth: u32) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed(8),
            LEN => self.len_delimited(wire, "a field").map(drop),
            FIXED32 => self.fixed(4),
            GROUP_START if depth >= RECURSION_LIMIT => {
                Err(self.error(&format!("groups nested more than {RECURSION_LIMIT} deep")))
            }
            GROUP_START => loop {
                if self.done() {
                    return Err(self.error(&format!("group {field} is not ended")));
                }
                let (inner, wire) = self.key()?;
                if wire == GROUP_END {
                    if inner != field {
                        return Err(self.error(&format!("group {field} ended as group {inner}")));
                    }
                    return Ok(());
                }
                self.skip(inner, wire, depth + 1)?;
            },
            _ => Err(self.error(&format!("an end of group {field} that was not started"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::observed::What;
    use prost::Message;

    use prost::encoding::{encode_key, encode_varint, WireType};

    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        encode_key(field, WireType::try_from(u64::from(wire)).unwrap(), out);
    }

    fn number(out: &mut Vec<u8>, field: u32, n: u64) {
        key(out, field, VARINT);
        encode_varint(n, out);
    }

    fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, LEN);
        encode_varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    /// Unknown fields of every wire type, a group holding a group among them.
    fn unknown(out: &mut Vec<u8>, field: u32) {
        number(out, field, u64::MAX);
        key(out, field + 1, FIXED64);
        out.extend_from_slice(&[7; 8]);
        key(out, field + 2, FIXED32);
        out.extend_from_slice(&[9; 4]);
        bytes(out, field + 3, b"\x08\x01 anything \xff");
        key(out, field + 4, GROUP_START);
        number(out, 1, 5);
        key(out, 2, GROUP_START);
        bytes(out, 3, b"x");
        key(out, 2, GROUP_END);
        key(out, field + 4, GROUP_END);
    }

    fn owned(c: &CallView) -> proto::ObservedCall {
        proto::ObservedCall {
            thread: c.thread.into(),
            start_ms: c.start_ms,
            duration_ns: c.duration_ns,
            args: c.args.iter().map(|a| a.to_string()).collect(),
            returned: c.returned.into(),
            thrown: c.thrown.into(),
            method: c.method.into(),
            values: c.values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            this: c.this.into(),
        }
    }

    /// What the wire path reads of an `Observed`: its observation, dropped count and calls, or
    /// `None` where it leaves the message to prost.
    fn read(message: &[u8]) -> Result<Option<(u64, u64, Vec<proto::ObservedCall>)>, String> {
        let Observed::Calls { observation, dropped, mut calls } = observed(message)? else { return Ok(None) };
        let (mut read, mut view) = (Vec::new(), CallView::default());
        while let Some(bytes) = calls.next_call()? {
            call(bytes, &mut view)?;
            read.push(owned(&view));
        }
        Ok(Some((observation, dropped, read)))
    }

    /// What prost decodes of the same message, in the same form.
    fn decoded(message: &[u8]) -> Result<Option<(u64, u64, Vec<proto::ObservedCall>)>, prost::DecodeError> {
        let m = proto::Observed::decode(message)?;
        Ok(match m.what {
            Some(What::Call(c)) => Some((m.observation, m.dropped, vec![c])),
            Some(What::Calls(batch)) => Some((m.observation, m.dropped, batch.calls)),
            _ => None,
        })
    }

    #[test]
    fn fields_in_any_order_repeated_and_unknown_are_read_as_prost_reads_them() {
        let mut c = Vec::new();
        unknown(&mut c, 20);
        bytes(&mut c, 9, b"this");
        bytes(&mut c, 7, b"work(I)V");
        bytes(&mut c, 4, b"a0");
        let mut entry = Vec::new();
        bytes(&mut entry, 2, "v\u{1}é".as_bytes());
        unknown(&mut entry, 30);
        bytes(&mut entry, 1, b"k");
        bytes(&mut c, 8, &entry);
        bytes(&mut c, 1, b"first thread");
        number(&mut c, 2, 1);
        number(&mut c, 3, 1_000_500);
        unknown(&mut c, 40);
        bytes(&mut c, 1, b"main");
        number(&mut c, 2, u64::MAX);
        bytes(&mut c, 4, b"");
        bytes(&mut c, 4, b"a2");
        bytes(&mut c, 5, b"42");
        let mut again = Vec::new();
        bytes(&mut again, 1, b"k");
        bytes(&mut again, 2, b"replaced");
        bytes(&mut c, 8, &again);
        bytes(&mut c, 8, b""); // an empty entry: "" -> ""
        bytes(&mut c, 6, b"java.lang.X: y");
        let mut batch = Vec::new();
        unknown(&mut batch, 3);
        bytes(&mut batch, 1, &c);
        bytes(&mut batch, 1, b"");
        unknown(&mut batch, 50);
        bytes(&mut batch, 1, &c);
        let mut m = Vec::new();
        number(&mut m, 6, 77);
        unknown(&mut m, 100);
        bytes(&mut m, 11, &batch);
        number(&mut m, 1, 3);
        number(&mut m, 6, 78);
        let wire = read(&m).unwrap().unwrap();
        assert_eq!(Some(wire.clone()), decoded(&m).unwrap());
        let (observation, dropped, calls) = wire;
        assert_eq!((observation, dropped, calls.len()), (3, 78, 3));
        let first = &calls[0];
        assert_eq!((first.thread.as_str(), first.start_ms, first.duration_ns), ("main", u64::MAX, 1_000_500));
        assert_eq!(first.args, ["a0", "", "a2"]);
        assert_eq!(first.values.len(), 2);
        assert_eq!(first.values["k"], "replaced");
        assert_eq!(first.values[""], "");
        assert_eq!(calls[1], proto::ObservedCall::default());

        // one call (`call`), between the other fields
        let mut one = Vec::new();
        number(&mut one, 1, 9);
        bytes(&mut one, 2, &c);
        unknown(&mut one, 60);
        let wire = read(&one).unwrap().unwrap();
        assert_eq!(Some(wire.clone()), decoded(&one).unwrap());
        assert_eq!(wire.2.len(), 1);

        // a `what` twice (prost merges them) and other kinds are left to prost
        let mut twice = one.clone();
        bytes(&mut twice, 2, &c);
        assert!(matches!(observed(&twice), Ok(Observed::Other)));
        let mut then_ended = one.clone();
        bytes(&mut then_ended, 4, b"done");
        assert!(matches!(observed(&then_ended), Ok(Observed::Other)));
        assert!(matches!(observed(&[]), Ok(Observed::Other)));
    }

    /// Messages of watched calls with every kind of field set, `call` and `calls`.
    fn messages() -> Vec<Vec<u8>> {
        let calls: Vec<proto::ObservedCall> = (0..4)
            .map(|i| proto::ObservedCall {
                thread: format!("worker-{i} é"),
                start_ms: 1_700_000_000_000 + i,
                duration_ns: 300 << (i * 9),
                args: (0..i).map(|k| format!("arg\"{k}")).collect(),
                returned: if i % 2 == 0 { "7".into() } else { String::new() },
                thrown: if i % 2 == 1 { "java.io.IOException: gone".into() } else { String::new() },
                method: "work(Ljava/lang/String;)I".into(),
                values: (0..i).map(|k| (format!("args[{k}]"), format!("v{k}"))).collect(),
                this: "Hot@1f".into(),
            })
            .collect();
        let mut messages = vec![proto::Observed {
            observation: 300,
            what: Some(What::Calls(proto::ObservedCalls { calls: calls.clone() })),
            dropped: 1 << 40,
        }
        .encode_to_vec()];
        messages.extend(
            calls
                .into_iter()
                .map(|c| proto::Observed { observation: 1, what: Some(What::Call(c)), dropped: 2 }.encode_to_vec()),
        );
        messages
    }

    #[test]
    fn a_cut_or_corrupted_message_fails_where_prost_fails_and_never_panics() {
        let mut checked = 0;
        let mut check = |m: &[u8]| match (read(m), decoded(m)) {
            (Ok(None), _) => {}
            (Ok(Some(wire)), Ok(Some(prost))) => {
                assert_eq!(wire, prost, "{m:?}");
                checked += 1;
            }
            (Err(e), Err(_)) => {
                assert!(e.contains(" message of ") && e.contains(", at byte "), "{e}");
                checked += 1;
            }
            (wire, prost) => panic!("{m:?}: the wire path read {wire:?}, prost {prost:?}"),
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for m in messages() {
            for end in 0..m.len() {
                check(&m[..end]);
            }
            for _ in 0..3000 {
                let mut bad = m.clone();
                for _ in 0..random() % 3 + 1 {
                    let at = (random() % bad.len() as u64) as usize;
                    bad[at] = match random() % 4 {
                        0 => 0xff,
                        1 => 0x80,
                        2 => bad[at] ^ 1 << (random() % 8),
                        _ => random() as u8,
                    };
                }
                check(&bad);
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn bad_utf8_truncation_and_deep_groups_are_errors_that_say_what_is_wrong() {
        let mut c = Vec::new();
        bytes(&mut c, 7, b"work\xc3(");
        let mut m = Vec::new();
        bytes(&mut m, 2, &c);
        let e = read(&m).unwrap_err();
        assert!(e.contains("ObservedCall.method is not UTF-8"), "{e}");
        let e = read(&m[..m.len() - 1]).unwrap_err();
        assert_eq!(e, "Observed message of 9 bytes, at byte 2: Observed.what of 8 bytes is cut short (7 left)");
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            key(&mut deep, 15, GROUP_START);
        }
        let mut in_call = Vec::new();
        bytes(&mut in_call, 2, &deep);
        let e = read(&in_call).unwrap_err();
        assert!(e.contains("groups nested more than 100 deep"), "{e}");
        let e = read(&[0x0f]).unwrap_err();
        assert!(e.contains("invalid wire type 7 of field 1"), "{e}");
    }

    #[test]
    fn a_view_keeps_its_room_from_message_to_message() {
        let message = messages()[0].clone();
        let Ok(Observed::Calls { mut calls, .. }) = observed(&message) else { panic!("calls") };
        let mut view = CallView::default();
        while let Some(bytes) = calls.next_call().unwrap() {
            call(bytes, &mut view).unwrap();
        }
        let (args, values) = (view.args.as_ptr() as usize, view.values.as_ptr() as usize);
        let capacities = (view.args.capacity(), view.values.capacity());
        assert!(capacities.0 > 0 && capacities.1 > 0);
        let kept: CallView<'static> = view.recycle();
        assert_eq!((kept.args.as_ptr() as usize, kept.values.as_ptr() as usize), (args, values));
        assert_eq!((kept.args.capacity(), kept.values.capacity()), capacities);
        assert!(kept.args.is_empty() && kept.values.is_empty());
    }
}
