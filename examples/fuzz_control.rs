//! Control-plane fuzzer: sends random and mutated protobuf requests, as raw bytes over gRPC, to
//! every RPC of a live agent (`/repair.v1.Agent/<Method>`), so malformed messages reach the
//! server's decoder and the operations behind it; now and then it writes raw garbage on a fresh
//! connection. Every few hundred requests, on a timeout or a transport error, and at the end, it
//! checks that the JVM lives and that `Status` answers within 5 s; if not, the last inputs are
//! saved as `crash-*` files and it exits 1. Inputs whose answer (method, gRPC code, message shape)
//! was not seen before join the corpus (bounded). At the end it rolls back every patch (after an
//! empty policy, so no rule re-applies one) and checks that `Patches` is empty.
//!
//! ```sh
//! cargo run --release --example fuzz_control -- --pid PID --seconds 600 \
//!     --corpus fuzz/control-corpus --demo demo [--artifacts DIR] [--seed N] [--jobs 2]
//! ```
//! (or `--socket PATH` instead of `--pid`). `scripts/fuzz-control.sh` runs it against the demo.
//!
//! Corpus files are `<Method>-<hash>.bin`, each one encoded request message of that method.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use hyper_util::rt::TokioIo;
use prost::Message;
use repair_model::proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const METHODS: [&str; 13] = [
    "Status",
    "Classes",
    "ClassBytes",
    "Faults",
    "WatchFaults",
    "Apply",
    "Patches",
    "Rollback",
    "PolicyApply",
    "PolicyShow",
    "History",
    "Events",
    "WatchEvents",
];
const APPLY: usize = 5;
const POLICY_APPLY: usize = 8;
const MAX_CORPUS: usize = 500;
const MAX_CORPUS_PER_METHOD: usize = 60;
const MAX_CORPUS_FILE: usize = 16 * 1024;
const RING: usize = 32;

fn streaming(m: usize) -> bool {
    matches!(METHODS[m], "WatchFaults" | "WatchEvents")
}

// ---------------------------------------------------------------------------------------------
// Raw bytes over gRPC.

#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

async fn channel(socket: &Path) -> Result<Channel, String> {
    let path = socket.to_path_buf();
    Endpoint::from_static("http://agent.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| format!("{}: cannot connect: {e}", socket.display()))
}

fn path_of(m: usize) -> PathAndQuery {
    PathAndQuery::from_str(&format!("/repair.v1.Agent/{}", METHODS[m])).expect("a valid path")
}

/// What came back: OK with the reply's bytes (the first few messages of a stream), or a status.
enum Answer {
    Ok(Vec<Vec<u8>>),
    Err(Status),
    Timeout,
}

async fn call(ch: &Channel, m: usize, body: Vec<u8>, limit: Duration) -> Answer {
    let mut grpc = tonic::client::Grpc::new(ch.clone()).max_decoding_message_size(256 << 20);
    let work = async {
        if let Err(e) = grpc.ready().await {
            return Answer::Err(Status::unavailable(format!("not ready: {e}")));
        }
        if streaming(m) {
            match grpc.server_streaming(tonic::Request::new(body), path_of(m), RawCodec).await {
                Err(s) => Answer::Err(s),
                Ok(r) => {
                    let mut stream = r.into_inner();
                    let mut got = Vec::new();
                    // A watch ends only when the client goes: read what comes in 200 ms, then drop it.
                    let end = tokio::time::Instant::now() + Duration::from_millis(200);
                    while got.len() < 3 {
                        match tokio::time::timeout_at(end, stream.message()).await {
                            Ok(Ok(Some(msg))) => got.push(msg),
                            Ok(Ok(None)) | Err(_) => break,
                            Ok(Err(s)) => return Answer::Err(s),
                        }
                    }
                    Answer::Ok(got)
                }
            }
        } else {
            match grpc.unary(tonic::Request::new(body), path_of(m), RawCodec).await {
                Ok(r) => Answer::Ok(vec![r.into_inner()]),
                Err(s) => Answer::Err(s),
            }
        }
    };
    tokio::time::timeout(limit, work).await.unwrap_or(Answer::Timeout)
}

/// Whether a reply decodes as the message the proto says the method returns.
fn decodes_as_reply(m: usize, bytes: &[u8]) -> bool {
    match METHODS[m] {
        "Status" => proto::StatusReply::decode(bytes).is_ok(),
        "Classes" => proto::ClassesReply::decode(bytes).is_ok(),
        "ClassBytes" => proto::ClassBytesReply::decode(bytes).is_ok(),
        "Faults" => proto::FaultsReply::decode(bytes).is_ok(),
        "WatchFaults" => proto::Fault::decode(bytes).is_ok(),
        "Apply" => proto::Patch::decode(bytes).is_ok(),
        "Patches" | "Rollback" => proto::PatchesReply::decode(bytes).is_ok(),
        "PolicyApply" | "PolicyShow" => proto::PolicyReply::decode(bytes).is_ok(),
        "History" => proto::HistoryReply::decode(bytes).is_ok(),
        "Events" => proto::EventsReply::decode(bytes).is_ok(),
        "WatchEvents" => proto::Event::decode(bytes).is_ok(),
        _ => false,
    }
}

/// Checks an OK answer against its request where the contract says what it must hold; returns
/// what is wrong, if anything.
fn check_answer(m: usize, request: &[u8], replies: &[Vec<u8>]) -> Option<String> {
    for r in replies {
        if !decodes_as_reply(m, r) {
            return Some(format!("{} reply does not decode as its proto message ({} bytes)", METHODS[m], r.len()));
        }
    }
    let reply = replies.first()?;
    match METHODS[m] {
        "Classes" => {
            let glob = proto::ClassesRequest::decode(request).ok()?.glob;
            let r = proto::ClassesReply::decode(reply.as_slice()).ok()?;
            if glob.is_empty() {
                return None;
            }
            r.classes
                .iter()
                .find(|c| !repair_model::glob::matches(&glob, &c.name))
                .map(|c| format!("Classes {glob:?} answered {:?}, which the glob does not match", c.name))
        }
        "ClassBytes" => {
            let r = proto::ClassBytesReply::decode(reply.as_slice()).ok()?;
            (!r.bytes.starts_with(&[0xca, 0xfe, 0xba, 0xbe]))
                .then(|| format!("ClassBytes {:?}: {} bytes that are not a class file", r.class_name, r.bytes.len()))
        }
        "Rollback" => {
            let q = proto::RollbackRequest::decode(request).ok()?;
            let r = proto::PatchesReply::decode(reply.as_slice()).ok()?;
            if !q.all && (r.patches.len() != 1 || r.patches[0].id != q.id) {
                return Some(format!(
                    "Rollback {:?} answered OK with {:?}",
                    q.id,
                    r.patches.iter().map(|p| &p.id).collect::<Vec<_>>()
                ));
            }
            if q.all != q.id.is_empty() {
                return Some(format!("Rollback id {:?} all {} (contradictory) answered OK", q.id, q.all));
            }
            None
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness (xorshift64*: no dependency, reproducible from --seed).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// A length, mostly small, sometimes large.
    fn len(&mut self) -> usize {
        match self.below(10) {
            0..=5 => self.below(16),
            6..=8 => self.below(512),
            _ => self.below(64 * 1024),
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// Protobuf wire format.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// One top-level field: its number, wire type, whole span and (length-delimited) payload span.
#[derive(Clone, Copy)]
struct Field {
    number: u64,
    wire: u8,
    start: usize,
    end: usize,
    payload: (usize, usize),
}

/// The fields of a well-formed message, or `None`.
fn fields(b: &[u8]) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let key = get_varint(b, &mut i)?;
        let wire = (key & 7) as u8;
        let payload = match wire {
            0 => {
                let s = i;
                get_varint(b, &mut i)?;
                (s, i)
            }
            1 => (i, i + 8),
            5 => (i, i + 4),
            2 => {
                let n = usize::try_from(get_varint(b, &mut i)?).ok()?;
                (i, i.checked_add(n)?)
            }
            _ => return None,
        };
        if payload.1 > b.len() || key >> 3 == 0 {
            return None;
        }
        i = payload.1;
        out.push(Field { number: key >> 3, wire, start, end: i, payload });
    }
    Some(out)
}

fn ld_field(number: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    put_varint(&mut out, number << 3 | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

// ---------------------------------------------------------------------------------------------
// Mutations.

const INTERESTING: &[&str] = &[
    "0",
    "-1",
    "1",
    "2147483648",
    "9223372036854775807",
    "99999999999999999999999",
    "1e309",
    "-0.0",
    ".nan",
    ".inf",
    "~",
    "null",
    "true",
    "\"\"",
    "''",
    "[]",
    "{}",
    "&a",
    "*a",
    "!!binary",
    "!!str",
    "!!map",
    "<<: *a",
    "? ",
    "|",
    ">-",
    "'",
    "\"",
    "\\",
    "\t",
    "\u{0}",
    "\u{202e}",
    "é",
    "🦀",
    "%",
    "---",
    "...",
    "#",
    "java.lang.Throwable",
    "java.lang.String",
    "java.lang.Object",
    "java.lang.Error",
    "java.lang.StackOverflowError",
    "<init>",
    "<clinit>",
    "()V",
    "(Ljava/lang/String;)J",
    "(I)[[[[J",
    "repair.demo.PriceService",
    "repair.demo.OrderService",
    "repair.demo.StatsService",
    "repair.demo.ShopService",
    "repair.rt.Hooks",
    "repair.demo.*",
    "*",
    "?",
    "guard",
    "swap",
    "probe",
    "breaker",
    "catch",
    "fallback",
    "call",
    "occurrence",
    "owner",
    "value",
    "arg",
    "method",
    "default",
    "durable",
    "line:1",
    "line:-1",
    "line:99999",
    "entry",
    "exit",
    "throw",
    "args",
    "return",
    "time",
    "10s",
    "0ms",
    "-5s",
    "1000000h",
    "0.0000001s",
    "enforce",
    "dry-run",
    "allow_jdk",
    "caught",
    "at: caller",
    "rules",
    "when",
    "then",
    "validate",
    "limits",
    "max_fallback_rate",
    "repairs_per_minute",
    "active_patches",
    "application",
    "(",
    "[a-",
    "(a+)+$",
    "x{99999}",
];

/// YAML-aware text mutations of a spec or a policy (the parsers behind Apply and PolicyApply).
fn mutate_text(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    match rng.below(11) {
        0..=2 => {
            // Replace one token with an interesting one.
            let l = rng.below(lines.len());
            let line = lines[l].clone();
            let cuts: Vec<usize> = line
                .char_indices()
                .filter(|(_, c)| matches!(c, ' ' | ':' | ',' | '{' | '}' | '[' | ']' | '"'))
                .map(|(i, _)| i)
                .collect();
            let a = if cuts.is_empty() { 0 } else { *rng.pick(&cuts) + 1 };
            let a = a.min(line.len());
            let b = line[a..].find([' ', ':', ',', '}', ']', '"']).map_or(line.len(), |x| a + x);
            lines[l] = format!("{}{}{}", &line[..a], rng.pick(INTERESTING), &line[b..]);
        }
        3 => {
            let l = rng.below(lines.len());
            lines.remove(l);
        }
        4 => {
            let l = rng.below(lines.len());
            let dup = lines[l].clone();
            lines.insert(l, dup);
        }
        5 => {
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(a, b);
        }
        6 => {
            let l = rng.below(lines.len());
            let indent = " ".repeat(rng.below(9));
            lines[l] = format!("{indent}{}", lines[l].trim_start());
        }
        7 => {
            // Deep nesting or a long scalar.
            let depth = 1 + rng.below(3000);
            let deep = match rng.below(3) {
                0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                1 => format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth)),
                _ => "x".repeat(depth * 50),
            };
            let l = rng.below(lines.len());
            let line = lines[l].clone();
            lines[l] = match line.split_once(": ") {
                Some((k, _)) => format!("{k}: {deep}"),
                None => format!("{line}{deep}"),
            };
        }
        8 => {
            // Alias expansion ("billion laughs").
            let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
            for i in 1..(2 + rng.below(9)) {
                s.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(", ")));
            }
            lines.insert(0, s);
        }
        9 => {
            let l = rng.below(lines.len());
            let extra = format!("{}: {}", rng.pick(INTERESTING), rng.pick(INTERESTING));
            lines.insert(l, extra);
        }
        _ => {
            // Random characters into one line.
            let l = rng.below(lines.len());
            let mut line: Vec<char> = lines[l].chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(line.len() + 1);
                line.insert(at, random_char(rng));
            }
            lines[l] = line.into_iter().collect();
        }
    }
    lines.join("\n")
}

fn random_char(rng: &mut Rng) -> char {
    match rng.below(4) {
        0 => (0x20 + rng.below(0x5f) as u8) as char,
        1 => (rng.below(0x20) as u8) as char,
        _ => char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}'),
    }
}

fn random_utf8(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| random_char(rng)).collect::<String>().into_bytes()
}

fn invalid_utf8(rng: &mut Rng) -> Vec<u8> {
    let bad: &[&[u8]] = &[
        b"\xff",
        b"\xfe\xff",
        b"\xc0\x80",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xe2\x82",
        b"\x80",
        b"\xf0\x9f\xa6",
    ];
    let n = rng.below(8);
    let mut v = random_utf8(rng, n);
    v.extend_from_slice(bad[rng.below(bad.len())]);
    let n = rng.below(8);
    v.extend(random_utf8(rng, n));
    v
}

/// One mutation of an encoded message (`depth` limits recursion into nested messages).
/// `structured`: only mutations that keep the message well-formed, so that it gets past the
/// decoder to the operation (a spec's or a policy's YAML, a glob, an id, an attachment).
fn mutate_once(rng: &mut Rng, msg: &[u8], m: usize, pool: &[Vec<u8>], depth: u32, structured: bool) -> Vec<u8> {
    let mut b = msg.to_vec();
    let parsed = fields(&b);
    let lds: Vec<Field> = parsed.iter().flatten().copied().filter(|f| f.wire == 2).collect();
    let op = if structured { *rng.pick(&[5, 8, 9, 10, 11, 12, 12, 12]) } else { rng.below(16) };
    match op {
        0 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 if !b.is_empty() => {
            let i = rng.below(b.len());
            let r = rng.next() as u8;
            b[i] = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, 0x01, r]);
        }
        2 if !b.is_empty() => b.truncate(rng.below(b.len())),
        3 => {
            let n = rng.len();
            b.extend(rng.bytes(n));
        }
        4 => {
            // A varint field with a random number and value (unknown fields, wrong types).
            put_varint(&mut b, (1 + rng.below(20) as u64) << 3);
            let r = rng.next();
            let v = *rng.pick(&[0u64, 1, u64::MAX, i64::MAX as u64, 1 << 31, r]);
            put_varint(&mut b, v);
        }
        5 if !lds.is_empty() => {
            // Duplicate a length-delimited field (proto3: the last wins; a map gets two entries).
            let f = *rng.pick(&lds);
            let copy = b[f.start..f.end].to_vec();
            for _ in 0..1 + rng.below(3) {
                b.extend_from_slice(&copy);
            }
        }
        6 => {
            // A length prefix far past the end.
            put_varint(&mut b, (1 + rng.below(8) as u64) << 3 | 2);
            put_varint(&mut b, *rng.pick(&[1u64 << 31, u64::MAX, 1 << 62, 0x7fff_ffff, 4 << 20]));
            let n = rng.below(8);
            b.extend(rng.bytes(n));
        }
        7 if parsed.as_ref().is_some_and(|p| !p.is_empty()) => {
            // The same field number with another wire type (3 and 4 are groups, 6 and 7 invalid).
            let f = *rng.pick(parsed.as_ref().expect("parsed"));
            let mut key = Vec::new();
            put_varint(&mut key, f.number << 3 | rng.below(8) as u64);
            let mut i = f.start;
            get_varint(&b, &mut i);
            b.splice(f.start..i, key);
        }
        8 | 9 if !lds.is_empty() => {
            // Replace a string with random UTF-8, invalid UTF-8, or a big one.
            let f = *rng.pick(&lds);
            let payload = match rng.below(4) {
                0 if !structured => invalid_utf8(rng),
                0 => rng.pick(INTERESTING).as_bytes().to_vec(),
                1 => {
                    let n = match rng.below(20) {
                        0 => 1 + rng.below(3 << 20),
                        _ => 1 + rng.below(8 * 1024),
                    };
                    let unit = rng.pick(INTERESTING).as_bytes().to_vec();
                    unit.iter().copied().cycle().take(n.max(unit.len())).collect()
                }
                _ => {
                    let n = rng.len();
                    random_utf8(rng, n)
                }
            };
            b.splice(f.start..f.end, ld_field(f.number, &payload));
        }
        10 if !lds.is_empty() => {
            // Many copies of one field (huge repeated fields, maps with many entries).
            let f = *rng.pick(&lds);
            let copy = b[f.start..f.end].to_vec();
            let n = if rng.chance(10) { 1 + rng.below(100_000) } else { 1 + rng.below(2000) };
            let budget = (4usize << 20) / copy.len().max(1);
            for _ in 0..n.min(budget.max(1)) {
                b.extend_from_slice(&copy);
            }
        }
        11 | 12 if !lds.is_empty() && depth < 3 => {
            // Mutate inside a length-delimited field and fix its length: YAML text for specs and
            // policies, a nested message (an attachment entry), or its bytes (class files).
            let f = *rng.pick(&lds);
            let inner = b[f.payload.0..f.payload.1].to_vec();
            let new = match std::str::from_utf8(&inner) {
                Ok(text) if structured || ((m == APPLY || m == POLICY_APPLY) && f.number == 1 && !rng.chance(20)) => {
                    mutate_text(rng, text).into_bytes()
                }
                _ if fields(&inner).is_some_and(|x| !x.is_empty()) && rng.chance(50) => {
                    mutate_once(rng, &inner, usize::MAX, &[], depth + 1, structured)
                }
                _ => {
                    let mut x = inner;
                    for _ in 0..1 + rng.below(4) {
                        if x.is_empty() {
                            break;
                        }
                        let i = rng.below(x.len());
                        x[i] = rng.next() as u8;
                    }
                    x
                }
            };
            b.splice(f.start..f.end, ld_field(f.number, &new));
        }
        13 if !pool.is_empty() => {
            // Splice with another input of the same method.
            let other = rng.pick(pool);
            let (a, c) = (rng.below(b.len() + 1), rng.below(other.len() + 1));
            b.truncate(a);
            b.extend_from_slice(&other[c..]);
        }
        14 => {
            // A random varint as the whole message.
            b.clear();
            put_varint(&mut b, rng.next() >> rng.below(64));
        }
        _ => {
            // Insert random bytes.
            let at = rng.below(b.len() + 1);
            let n = 1 + rng.below(8);
            let ins = rng.bytes(n);
            b.splice(at..at, ins);
        }
    }
    b
}

fn mutate(rng: &mut Rng, seed: &[u8], m: usize, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let structured = rng.chance(60);
    for _ in 0..1 + rng.below(4) {
        b = mutate_once(rng, &b, m, pool, 0, structured);
        if b.len() > 6 << 20 {
            b.truncate(6 << 20);
        }
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Seeds.

fn with_id(yaml: &str, id: &str) -> String {
    yaml.lines()
        .map(|l| if l.starts_with("id:") { format!("id: {id}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

fn apply_req(yaml: &str, source: &str) -> Vec<u8> {
    proto::ApplyRequest { spec_yaml: yaml.into(), source: source.into(), who: "fuzz".into(), ..Default::default() }
        .encode_to_vec()
}

/// Valid requests of each method: the demo's specs and policy, and a few of every kind.
fn seeds(demo: &Path, price_class: Option<Vec<u8>>) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut s: Vec<Vec<Vec<u8>>> = vec![Vec::new(); METHODS.len()];
    let empty = Vec::new();
    for (m, name) in METHODS.iter().enumerate() {
        if matches!(
            *name,
            "Status" | "Faults" | "WatchFaults" | "Patches" | "PolicyShow" | "History" | "Events" | "WatchEvents"
        ) {
            s[m].push(empty.clone());
            s[m].push(vec![0x08, 0x01]); // an unknown varint field
        }
    }
    let idx = |n: &str| METHODS.iter().position(|m| *m == n).expect("a method");
    for glob in ["repair.demo.*", "*", "", "*Service", "java.lang.?tring", &format!("{}b", "*a".repeat(40))] {
        s[idx("Classes")].push(proto::ClassesRequest { glob: glob.into() }.encode_to_vec());
    }
    for class in
        ["repair.demo.PriceService", "repair/demo/PriceService", "java.lang.String", "", "[I", "no.such.Klass", "int"]
    {
        s[idx("ClassBytes")]
            .push(proto::ClassBytesRequest { class_name: class.into(), original: false }.encode_to_vec());
    }
    let mut ids = Vec::new();
    for spec in ["price-npe.yaml", "ratio-zero.yaml", "orders-page.yaml"] {
        let p = demo.join(spec);
        let yaml = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        s[APPLY].push(apply_req(&yaml, spec));
        let id = format!("fz-{}", spec.trim_end_matches(".yaml"));
        s[APPLY].push(apply_req(&with_id(&yaml, &id), spec));
        ids.push(id);
        ids.push(spec.trim_end_matches(".yaml").to_string());
    }
    let more = [
        "id: fz-probe\ntarget: { class: repair.demo.PriceService, method: \"price(Ljava/lang/String;)J\" }\naction:\n  probe: { at: [entry, exit, throw], capture: [args, return, time] }\n",
        "id: fz-breaker\ntarget: { class: repair.demo.StatsService, method: ratio }\naction:\n  breaker: { failures: 3, window: 10s, cooldown: 1s, fallback: default }\n",
        "id: fz-call\ntarget: { class: repair.demo.PriceService, method: price }\naction:\n  guard: { call: { method: longValue, occurrence: 1 }, catch: [java.lang.NullPointerException], fallback: { value: 0 } }\n",
        "id: fz-arg\ntarget: { class: repair.demo.OrderService, method: page }\naction:\n  guard: { catch: [java.lang.RuntimeException], fallback: null }\ndurable: false\n",
        "id: fz-line\ntarget: { class: repair.demo.OrderService, method: page }\naction:\n  probe: { at: [\"line:1\"] }\n",
    ];
    for (i, yaml) in more.iter().enumerate() {
        s[APPLY].push(apply_req(yaml, &format!("more-{i}.yaml")));
        ids.push(yaml[4..yaml.find('\n').unwrap_or(4)].to_string());
    }
    if let Some(bytes) = price_class {
        // A swap of PriceService.price with its own live bytes: the attachment's class file is
        // what mutations inside the map entry reach.
        let yaml = "id: fz-swap\ntarget: { class: repair.demo.PriceService, method: price }\naction:\n  swap: { class_file: PriceService.class }\n";
        let mut req = proto::ApplyRequest { spec_yaml: yaml.into(), source: "swap.yaml".into(), ..Default::default() };
        req.attachments.insert("PriceService.class".into(), bytes);
        s[APPLY].push(req.encode_to_vec());
        ids.push("fz-swap".into());
    }
    for id in &ids {
        s[idx("Rollback")]
            .push(proto::RollbackRequest { id: id.clone(), all: false, who: "fuzz".into() }.encode_to_vec());
    }
    s[idx("Rollback")]
        .push(proto::RollbackRequest { id: String::new(), all: true, who: "fuzz".into() }.encode_to_vec());
    s[idx("Rollback")].push(proto::RollbackRequest { id: "x".into(), all: true, who: String::new() }.encode_to_vec());
    s[idx("Rollback")].push(proto::RollbackRequest::default().encode_to_vec());
    let p = demo.join("policy.yaml");
    let policy = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    for yaml in [policy.clone(), policy.replace("mode: enforce", "mode: dry-run"), "mode: enforce\nrules: []\n".into()]
    {
        s[POLICY_APPLY]
            .push(proto::PolicyApplyRequest { yaml, source: "policy.yaml".into(), who: "fuzz".into() }.encode_to_vec());
    }
    Ok(s)
}

/// Corpus files: `<Method>-<hash>.bin`.
fn load_corpus(dir: &Path, pools: &mut [Vec<Vec<u8>>]) -> usize {
    let mut n = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some((method, _)) = name.split_once('-') else { continue };
        let Some(m) = METHODS.iter().position(|x| *x == method) else { continue };
        if let Ok(bytes) = std::fs::read(e.path()) {
            pools[m].push(bytes);
            n += 1;
        }
    }
    n
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// The shape of a status message: quoted parts, numbers, paths and long words left out, so that
/// echoes of the input do not make every answer new.
fn shape(message: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '"' | '`') => quote = Some(c),
            None if c == '(' => quote = Some(')'),
            None if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            None => out.push(c),
        }
    }
    let words: Vec<&str> = out
        .split_whitespace()
        .filter(|w| {
            let w = w.trim_end_matches([':', ',', ';', '.']);
            !w.is_empty() && w.len() <= 24 && w.chars().all(|c| c.is_ascii_alphabetic())
        })
        .take(8)
        .collect();
    words.join(" ")
}

fn class_of(m: usize, answer: &Answer) -> String {
    match answer {
        Answer::Ok(replies) => {
            let numbers: std::collections::BTreeSet<u64> =
                replies.iter().flat_map(|r| fields(r).unwrap_or_default()).map(|f| f.number).collect();
            format!("{} OK n={} fields={numbers:?}", METHODS[m], replies.len().min(2))
        }
        Answer::Err(s) => format!("{} {:?} {}", METHODS[m], s.code(), shape(s.message())),
        Answer::Timeout => format!("{} timeout", METHODS[m]),
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Shared {
    socket: PathBuf,
    pid: Option<u32>,
    corpus: Option<PathBuf>,
    artifacts: PathBuf,
    pools: Mutex<Vec<Vec<Vec<u8>>>>,
    seen: Mutex<HashSet<String>>,
    corpus_files: Mutex<(usize, Vec<usize>)>,
    ring: Mutex<VecDeque<(usize, Vec<u8>)>>,
    sent: Vec<AtomicU64>,
    codes: Mutex<BTreeMap<String, u64>>,
    raw: AtomicU64,
    new_entries: AtomicU64,
    anomalies: Mutex<Vec<String>>,
    anomaly_kinds: Mutex<HashSet<String>>,
    total: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    checking: tokio::sync::Mutex<()>,
}

fn jvm_alive(pid: Option<u32>) -> bool {
    let Some(pid) = pid else { return true };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: Z (zombie) and X (dead) are gone.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Status on a fresh connection within 5 s: Ok(latency) or why not.
async fn status_answers(socket: &Path) -> Result<Duration, String> {
    let start = Instant::now();
    let work = async {
        let ch = channel(socket).await?;
        let mut client = proto::agent_client::AgentClient::new(ch);
        client.status(proto::StatusRequest {}).await.map_err(|s| format!("Status: {:?} {}", s.code(), s.message()))
    };
    match tokio::time::timeout(Duration::from_secs(5), work).await {
        Ok(Ok(_)) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("Status did not answer within 5 s".into()),
    }
}

impl Shared {
    /// Liveness: the JVM and a Status answer. On failure saves the last inputs and flags the run.
    async fn check(&self, why: &str) -> bool {
        let _one = self.checking.lock().await;
        if self.failed.load(Ordering::SeqCst) {
            return false;
        }
        let problem = if !jvm_alive(self.pid) {
            Some(format!("the JVM (pid {}) is gone", self.pid.unwrap_or(0)))
        } else {
            match status_answers(&self.socket).await {
                Ok(_) => None,
                // One retry: a check racing a burst of slow calls (big applies) gets another 5 s.
                Err(first) => match status_answers(&self.socket).await {
                    Ok(_) => None,
                    Err(e) => Some(format!("{first}; again: {e}")),
                },
            }
        };
        let Some(problem) = problem else { return true };
        let problem = format!("{problem} (check after {why})");
        self.save_crash(&problem);
        *self.failure.lock().unwrap() = Some(problem);
        self.failed.store(true, Ordering::SeqCst);
        false
    }

    fn remember(&self, m: usize, input: &[u8]) {
        let mut ring = self.ring.lock().unwrap();
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back((m, input.to_vec()));
    }

    fn save_crash(&self, problem: &str) {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let _ = std::fs::create_dir_all(&self.artifacts);
        let ring = self.ring.lock().unwrap();
        let mut index = String::new();
        for (i, (m, bytes)) in ring.iter().enumerate() {
            let name = format!("crash-{stamp}-{i:02}-{}.bin", METHODS.get(*m).copied().unwrap_or("raw"));
            let _ = std::fs::write(self.artifacts.join(&name), bytes);
            index.push_str(&format!("{name} {} bytes\n", bytes.len()));
        }
        let info = format!("{problem}\nlast {} inputs, oldest first (the last is the newest):\n{index}", ring.len());
        let _ = std::fs::write(self.artifacts.join(format!("crash-{stamp}-info.txt")), info);
        eprintln!("fuzz_control: {problem}; last inputs saved as {}/crash-{stamp}-*", self.artifacts.display());
    }

    fn record(&self, m: usize, input: &[u8], answer: &Answer) {
        let code = match answer {
            Answer::Ok(_) => "Ok".to_string(),
            Answer::Err(s) => format!("{:?}", s.code()),
            Answer::Timeout => "Timeout(client)".to_string(),
        };
        *self.codes.lock().unwrap().entry(code).or_default() += 1;
        let wrong = match answer {
            Answer::Ok(replies) => check_answer(m, input, replies),
            // A panic behind a call is a bug, whatever the input.
            Answer::Err(s) if s.message().contains("panic") => {
                Some(format!("{} answered {:?}: {}", METHODS[m], s.code(), s.message()))
            }
            // The answer did not survive HTTP/2 (an error message too big for a header, say): the
            // client gets a protocol error instead of the status, and the connection is torn down.
            Answer::Err(s) if s.message().contains("h2 protocol error") => Some(format!(
                "{} ({} bytes in): the answer was lost in transport: {:?} {}",
                METHODS[m],
                input.len(),
                s.code(),
                s.message()
            )),
            _ => None,
        };
        {
            if let Some(wrong) = wrong {
                let mut a = self.anomalies.lock().unwrap();
                let key = format!("{} {}", METHODS[m], shape(&wrong));
                if a.len() < 20 && self.anomaly_kinds.lock().unwrap().insert(key) {
                    let name = format!("anomaly-{}-{:016x}.bin", METHODS[m], fnv(input));
                    let _ = std::fs::create_dir_all(&self.artifacts);
                    let _ = std::fs::write(self.artifacts.join(&name), input);
                    eprintln!("fuzz_control: wrong answer: {wrong} (input {name})");
                    a.push(format!("{wrong} (input {name})"));
                }
            }
        }
        let class = class_of(m, answer);
        if !self.seen.lock().unwrap().insert(class) {
            return;
        }
        let Some(dir) = &self.corpus else { return };
        if input.len() > MAX_CORPUS_FILE {
            return;
        }
        {
            let mut files = self.corpus_files.lock().unwrap();
            if files.0 >= MAX_CORPUS || files.1[m] >= MAX_CORPUS_PER_METHOD {
                return;
            }
            let path = dir.join(format!("{}-{:016x}.bin", METHODS[m], fnv(input)));
            if path.exists() || std::fs::write(&path, input).is_err() {
                return;
            }
            files.0 += 1;
            files.1[m] += 1;
        }
        self.new_entries.fetch_add(1, Ordering::SeqCst);
        self.pools.lock().unwrap()[m].push(input.to_vec());
    }
}

/// Garbage on a fresh connection (not HTTP/2, or HTTP/2 gone wrong after the preface).
fn raw_garbage(rng: &mut Rng) -> Vec<u8> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut data = match rng.below(5) {
        0 => b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        1 => PREFACE.to_vec(),
        2 => PREFACE[..rng.below(PREFACE.len())].to_vec(),
        3 => {
            // The preface, then a frame header claiming 16 MiB of an unknown type.
            let mut v = PREFACE.to_vec();
            v.extend_from_slice(&[0xff, 0xff, 0xff, rng.next() as u8, 0xff, 0x7f, 0xff, 0xff, 0xff]);
            v
        }
        _ => Vec::new(),
    };
    let n = rng.len();
    data.extend(rng.bytes(n));
    data
}

async fn send_raw(socket: &Path, data: &[u8]) {
    let work = async {
        let Ok(mut s) = tokio::net::UnixStream::connect(socket).await else { return };
        let _ = s.write_all(data).await;
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), work).await;
}

async fn worker(shared: Arc<Shared>, mut rng: Rng, deadline: Instant, check_every: u64) {
    let mut ch = match channel(&shared.socket).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fuzz_control: {e}");
            shared.failed.store(true, Ordering::SeqCst);
            *shared.failure.lock().unwrap() = Some(e);
            return;
        }
    };
    while Instant::now() < deadline && !shared.failed.load(Ordering::SeqCst) {
        let n = shared.total.fetch_add(1, Ordering::SeqCst) + 1;
        if n % check_every == 0 && !shared.check(&format!("{n} requests")).await {
            return;
        }
        if rng.chance(1) && rng.chance(50) {
            let data = raw_garbage(&mut rng);
            shared.remember(usize::MAX, &data);
            send_raw(&shared.socket, &data).await;
            shared.raw.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let m = rng.below(METHODS.len());
        let input = {
            let pools = shared.pools.lock().unwrap();
            let pool = &pools[m];
            if pool.is_empty() || rng.chance(3) {
                let n = rng.len();
                rng.bytes(n)
            } else if rng.chance(5) {
                rng.pick(pool).clone()
            } else {
                let seed = rng.pick(pool).clone();
                mutate(&mut rng, &seed, m, pool)
            }
        };
        shared.remember(m, &input);
        shared.sent[m].fetch_add(1, Ordering::SeqCst);
        let answer = call(&ch, m, input.clone(), Duration::from_secs(20)).await;
        shared.record(m, &input, &answer);
        if let Ok(t) = std::env::var("FUZZ_TRACE") {
            use std::io::Write;
            let code = match &answer {
                Answer::Ok(_) => "Ok".to_string(),
                Answer::Err(s) => format!("{:?} {}", s.code(), s.message().chars().take(100).collect::<String>()),
                Answer::Timeout => "timeout".into(),
            };
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(t) {
                let _ = writeln!(f, "{} {} {code}", METHODS[m], input.len());
            }
        }
        let suspicious = match &answer {
            Answer::Timeout => Some("a request that did not answer within 20 s"),
            Answer::Err(s) if s.code() == Code::Unavailable || s.code() == Code::Unknown => Some("a transport error"),
            _ => None,
        };
        if let Some(why) = suspicious {
            if !shared.check(why).await {
                return;
            }
            if let Ok(c) = channel(&shared.socket).await {
                ch = c;
            }
        }
    }
}

fn usage() -> String {
    "usage: fuzz_control (--pid PID | --socket PATH) [--replay METHOD:FILE] [--seconds N] [--corpus DIR] [--demo DIR] \
     [--artifacts DIR] [--seed N] [--jobs N] [--check-every N] [--classes FILE] \
     (FUZZ_TRACE=FILE: one line per request)"
        .into()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fuzz_control: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opt: BTreeMap<String, String> = BTreeMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let key = k.strip_prefix("--").ok_or_else(usage)?;
        let v = it.next().ok_or_else(usage)?;
        opt.insert(key.to_string(), v.clone());
    }
    let num = |k: &str, d: u64| -> Result<u64, String> {
        opt.get(k).map_or(Ok(d), |v| v.parse().map_err(|_| format!("--{k} {v}: expected a number")))
    };
    let pid: Option<u32> = match opt.get("pid") {
        Some(p) => Some(p.parse().map_err(|_| usage())?),
        None => None,
    };
    let socket = match (pid, opt.get("socket")) {
        (_, Some(s)) => PathBuf::from(s),
        (Some(p), None) => repair_model::endpoint::socket_path(p),
        (None, None) => return Err(usage()),
    };
    // A socket named <pid>.sock names its JVM.
    let pid = pid.or_else(|| socket.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()));
    if let Some(r) = opt.get("replay") {
        // One input on a fresh connection, then Status on the same connection: what came back.
        let (method, file) = r.split_once(':').ok_or_else(usage)?;
        let m = METHODS.iter().position(|x| *x == method).ok_or_else(|| format!("no method {method}"))?;
        let input = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        let ch = channel(&socket).await?;
        for (m, input) in [(m, input), (0, Vec::new())] {
            let answer = call(&ch, m, input.clone(), Duration::from_secs(20)).await;
            println!("{} ({} bytes): {}", METHODS[m], input.len(), class_of(m, &answer));
            if let Answer::Err(s) = answer {
                println!("  {:?}: {}", s.code(), s.message());
            }
        }
        return Ok(true);
    }
    let seconds = num("seconds", 600)?;
    let seed = num(
        "seed",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1,
    )?;
    let jobs = num("jobs", 2)?.max(1);
    let check_every = num("check-every", 300)?.max(1);
    let corpus = opt.get("corpus").map(PathBuf::from);
    let demo = PathBuf::from(opt.get("demo").map_or("demo", String::as_str));
    let artifacts = opt.get("artifacts").map(PathBuf::from).or_else(|| corpus.clone()).unwrap_or_else(|| ".".into());
    if let Some(c) = &corpus {
        std::fs::create_dir_all(c).map_err(|e| format!("{}: {e}", c.display()))?;
    }

    status_answers(&socket).await.map_err(|e| format!("the agent does not answer before the run: {e}"))?;
    let ch = channel(&socket).await?;
    let price = {
        let mut client = proto::agent_client::AgentClient::new(ch.clone());
        let req = proto::ClassBytesRequest { class_name: "repair.demo.PriceService".into(), original: false };
        client.class_bytes(req).await.ok().map(|r| r.into_inner().bytes)
    };
    let mut pools = seeds(&demo, price)?;
    let seeded: usize = pools.iter().map(Vec::len).sum();
    let from_corpus = corpus.as_deref().map_or(0, |c| load_corpus(c, &mut pools));
    let mut per_method = vec![0usize; METHODS.len()];
    if let Some(c) = &corpus {
        for e in std::fs::read_dir(c).map_err(|e| format!("{}: {e}", c.display()))?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(m) = METHODS.iter().position(|x| name.starts_with(&format!("{x}-"))) {
                per_method[m] += 1;
            }
        }
    }
    let shared = Arc::new(Shared {
        socket: socket.clone(),
        pid,
        corpus,
        artifacts,
        pools: Mutex::new(Vec::new()),
        seen: Mutex::new(HashSet::new()),
        corpus_files: Mutex::new((per_method.iter().sum(), per_method)),
        ring: Mutex::new(VecDeque::new()),
        sent: METHODS.iter().map(|_| AtomicU64::new(0)).collect(),
        codes: Mutex::new(BTreeMap::new()),
        raw: AtomicU64::new(0),
        new_entries: AtomicU64::new(0),
        anomalies: Mutex::new(Vec::new()),
        anomaly_kinds: Mutex::new(HashSet::new()),
        total: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        failure: Mutex::new(None),
        checking: tokio::sync::Mutex::new(()),
    });
    println!(
        "fuzz_control: {} (pid {}), {seconds} s, {jobs} jobs, seed {seed}, {seeded} seeds + {from_corpus} corpus files",
        socket.display(),
        pid.map_or("?".into(), |p| p.to_string())
    );
    // What the seeds and the corpus answer is known: only answers beyond them are new.
    for (m, pool) in pools.iter().enumerate() {
        for input in pool {
            let answer = call(&ch, m, input.clone(), Duration::from_secs(20)).await;
            shared.seen.lock().unwrap().insert(class_of(m, &answer));
        }
    }
    *shared.pools.lock().unwrap() = pools;

    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for j in 0..jobs {
        let rng = Rng(seed.wrapping_add(j.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        tasks.push(tokio::spawn(worker(shared.clone(), rng, deadline, check_every)));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();

    // The end: alive and answering, then every patch rolled back under an empty policy.
    let alive = jvm_alive(pid);
    let answered = status_answers(&socket).await;
    if !shared.failed.load(Ordering::SeqCst) && (!alive || answered.is_err()) {
        shared.check("the end of the run").await;
    }
    let mut cleanup = String::from("not tried");
    let mut clean = false;
    if answered.is_ok() {
        let ch = channel(&socket).await?;
        let mut client = proto::agent_client::AgentClient::new(ch);
        let quiet = proto::PolicyApplyRequest {
            yaml: "mode: dry-run\nrules: []\n".into(),
            source: "fuzz-end".into(),
            who: "fuzz".into(),
        };
        let policy = client.policy_apply(quiet).await.map_err(|s| format!("PolicyApply: {}", s.message()));
        let mut left = Vec::new();
        for _ in 0..5 {
            let all = proto::RollbackRequest { id: String::new(), all: true, who: "fuzz".into() };
            let rolled = client.rollback(all).await;
            left = match client.patches(proto::PatchesRequest {}).await {
                Ok(r) => r.into_inner().patches.into_iter().map(|p| p.id).collect(),
                Err(s) => vec![format!("<Patches failed: {}>", s.message())],
            };
            if let Err(s) = rolled {
                cleanup = format!("Rollback all failed: {:?} {}", s.code(), s.message());
            }
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        clean = left.is_empty() && policy.is_ok();
        cleanup = match (&policy, left.is_empty()) {
            (Err(e), _) => format!("empty policy refused: {e}"),
            (Ok(_), true) => "Rollback all, Patches empty: yes".into(),
            (Ok(_), false) => format!("Patches still active after Rollback all: {left:?} ({cleanup})"),
        };
    }

    let total: u64 = shared.sent.iter().map(|a| a.load(Ordering::SeqCst)).sum();
    println!(
        "requests: {total} in {:.1} s ({:.0}/s), plus {} raw garbage connections",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64().max(0.001),
        shared.raw.load(Ordering::SeqCst)
    );
    let per: Vec<String> =
        METHODS.iter().zip(&shared.sent).map(|(m, n)| format!("{m}={}", n.load(Ordering::SeqCst))).collect();
    println!("requests by method: {}", per.join(" "));
    let codes: Vec<String> = shared.codes.lock().unwrap().iter().map(|(c, n)| format!("{c}={n}")).collect();
    println!("responses by gRPC code: {}", codes.join(" "));
    println!(
        "new corpus entries: {} (corpus now {} files; {} answer classes seen)",
        shared.new_entries.load(Ordering::SeqCst),
        shared.corpus_files.lock().unwrap().0,
        shared.seen.lock().unwrap().len()
    );
    if let Some(f) = opt.get("classes") {
        let mut seen: Vec<String> = shared.seen.lock().unwrap().iter().cloned().collect();
        seen.sort();
        let _ = std::fs::write(f, seen.join("\n") + "\n");
    }
    let anomalies = shared.anomalies.lock().unwrap().clone();
    println!("wrong answers (kinds, first input of each kept as anomaly-*): {}", anomalies.len());
    for a in &anomalies {
        println!("  {a}");
    }
    println!("JVM alive: {}", if jvm_alive(pid) { "yes" } else { "no" });
    match &answered {
        Ok(d) => println!("agent answered Status: yes ({:.1} ms)", d.as_secs_f64() * 1000.0),
        Err(e) => println!("agent answered Status: no ({e})"),
    }
    println!("cleanup: {cleanup}");
    let failure = shared.failure.lock().unwrap().clone();
    let ok = failure.is_none() && clean;
    match failure {
        Some(f) => println!("result: FAILED: {f}"),
        None if !clean => println!("result: FAILED: cleanup"),
        None => println!("result: OK (no crash, no hang)"),
    }
    Ok(ok)
}
