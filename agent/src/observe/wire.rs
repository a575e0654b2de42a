//! Protobuf's wire form, written straight from records: a watched call goes from its record to
//! the bytes of its `ObservedCall` in one pass, without a `proto::ObservedCall` and its strings in
//! between (building, encoding and freeing those was most of what the stream's thread spent on a
//! call, and that thread shares the cores with the application).

use prost::encoding::{encode_key, encode_varint, WireType};

/// A varint field, left out when zero (as prost leaves out a default).
pub fn uint(out: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(v, out);
    }
}

/// A string or bytes field (written even when empty: an element of a repeated field).
pub fn bytes(out: &mut Vec<u8>, tag: u32, v: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(v.len() as u64, out);
    out.extend_from_slice(v);
}

/// A length-delimited field whose body `body` appends; its length is filled in after (one byte is
/// kept for it: a longer body moves over to make room). Nothing is left of the field when `body`
/// fails.
pub fn nested(out: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>) -> Option<()>) -> Option<()> {
    let start = out.len();
    encode_key(tag, WireType::LengthDelimited, out);
    let at = out.len();
    out.push(0);
    if body(out).is_none() {
        out.truncate(start);
        return None;
    }
    let n = out.len() - at - 1;
    if n < 0x80 {
        out[at] = n as u8;
    } else {
        let mut len = Vec::with_capacity(10);
        encode_varint(n as u64, &mut len);
        out.splice(at..at + 1, len);
    }
    Some(())
}

/// The body of the length-delimited field that `field` is (its key and length skipped).
pub fn body(field: &[u8]) -> Option<&[u8]> {
    let mut rest = field;
    prost::encoding::decode_key(&mut rest).ok()?;
    let n = prost::encoding::decode_varint(&mut rest).ok()? as usize;
    rest.get(..n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use repair_model::proto;

    #[test]
    fn fields_written_here_decode_as_prost_encodes_them() {
        for n in [0, 1, 127, 128, 300, 20_000] {
            let arg = "x".repeat(n);
            let mut out = Vec::new();
            nested(&mut out, 1, |o| {
                bytes(o, 1, b"main");
                uint(o, 2, 1_700_000_000_000);
                uint(o, 3, 0);
                bytes(o, 4, arg.as_bytes());
                bytes(o, 4, b"");
                nested(o, 8, |o| {
                    bytes(o, 1, b"return.total");
                    bytes(o, 2, b"7");
                    Some(())
                })
            })
            .unwrap();
            let expected = proto::ObservedCalls {
                calls: vec![proto::ObservedCall {
                    thread: "main".into(),
                    start_ms: 1_700_000_000_000,
                    args: vec![arg.clone(), String::new()],
                    values: [("return.total".to_string(), "7".to_string())].into(),
                    ..Default::default()
                }],
            };
            assert_eq!(proto::ObservedCalls::decode(&out[..]).unwrap(), expected, "an argument of {n} bytes");
            let call = proto::ObservedCall::decode(body(&out).unwrap()).unwrap();
            assert_eq!(call, expected.calls[0]);
        }
    }

    #[test]
    fn a_failed_body_leaves_nothing() {
        let mut out = vec![9];
        assert_eq!(
            nested(&mut out, 4, |o| {
                o.extend_from_slice(b"half");
                None
            }),
            None
        );
        assert_eq!(out, [9]);
    }
}
