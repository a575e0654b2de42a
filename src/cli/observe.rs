//! `repairctl watch` and `monitor`: a method observed while the command runs, and `observations`
//! and `stop` for the ones in progress.

use super::json;
use super::wire::{self, CallView};
use prost::Message;
use serde_json::json;
use tokio_stream::StreamExt;

use super::live::{operator, rpc, Conn};
use super::{out_bytes, print, record_text, table, Output};
use crate::client::describe;
use crate::proto::{self, observed::What};

/// What to observe and for how long.
#[derive(Debug, Clone, Default)]
pub struct Observe {
    pub kind: &'static str,
    pub class: String,
    pub method: String,
    pub condition: Option<String>,
    pub sample: u32,
    pub count: u64,
    pub duration: Option<std::time::Duration>,
    pub every: Option<std::time::Duration>,
    pub max_per_second: u32,
    pub show: Vec<String>,
    pub expand: u32,
    pub this: bool,
    pub line: u32,
    pub template: String,
    pub to_stderr: bool,
    pub min: Option<std::time::Duration>,
    pub max_cpu_ms: u32,
    pub max_kib: u32,
    pub depth: u32,
}

/// `Class:LINE` → (class, line).
pub fn class_and_line(text: &str) -> Result<(String, u32), String> {
    let (class, line) =
        text.rsplit_once(':').ok_or_else(|| format!("{text:?}: expected CLASS:LINE, e.g. com.shop.Cart:42"))?;
    let line = line
        .parse::<u32>()
        .ok()
        .filter(|l| (1..=65535).contains(l))
        .ok_or_else(|| format!("{text:?}: {line:?} is not a line number"))?;
    Ok((class.to_string(), line))
}

pub async fn observe(conn: &Conn, o: &Observe) -> Result<(), String> {
    let req = proto::ObserveRequest {
        kind: o.kind.to_string(),
        class_name: o.class.clone(),
        method: o.method.clone(),
        condition: o.condition.clone().unwrap_or_default(),
        sample: o.sample,
        count: o.count,
        duration_ms: o.duration.map_or(0, |d| d.as_millis().max(1) as u64),
        every_ms: o.every.map_or(0, |d| d.as_millis().max(1) as u64),
        who: operator(),
        max_per_second: o.max_per_second,
        show: o.show.clone(),
        expand: o.expand,
        this: o.this,
        line: o.line,
        template: o.template.clone(),
        to_stderr: o.to_stderr,
        min_ns: o.min.map_or(0, |d| d.as_nanos() as u64),
        max_cpu_ms: o.max_cpu_ms,
        max_kib: o.max_kib,
        depth: o.depth,
    };
    let mut stream = rpc(conn.client().await?.observe_wire(req).await)?;
    // Records are written in batches: while the agent streams faster than a write a record
    // could keep up with, they pile up here and go out together once nothing more is ready.
    const BATCH: usize = 1 << 16;
    // How long the end of the stream is awaited after the observation's last message.
    const ROLLBACK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    let mut pending = Vec::with_capacity(2 * BATCH);
    // the room of a watched call's arguments and values, kept from message to message
    let mut scratch = CallView::default();
    let flush = |pending: &mut Vec<u8>| {
        let written = out_bytes(pending);
        pending.clear();
        written
    };
    loop {
        let item = match tokio::time::timeout(std::time::Duration::ZERO, stream.next()).await {
            Ok(item) => item,
            Err(_) => {
                flush(&mut pending)?;
                stream.next().await
            }
        };
        let Some(item) = item else { break };
        let message = match item {
            Ok(message) => message,
            Err(status) => {
                flush(&mut pending)?;
                return Err(describe(&status));
            }
        };
        let before = pending.len();
        let ended = match record_wire(&mut pending, conn.output, &message, &mut scratch) {
            Ok(ended) => ended,
            Err(e) => {
                // the records of the messages before this one, none of this one's
                pending.truncate(before);
                flush(&mut pending)?;
                return Err(format!("the agent sent a message repairctl cannot read: {e}"));
            }
        };
        if ended {
            flush(&mut pending)?;
            // The agent ends the stream once the probes are rolled back: waiting for that end
            // means that when repairctl returns, the class is as it was.
            let rest = async { while let Some(Ok(_)) = stream.next().await {} };
            if tokio::time::timeout(ROLLBACK_WAIT, rest).await.is_err() {
                eprintln!(
                    "repairctl: the observation ended; its rollback was not confirmed within {} s",
                    ROLLBACK_WAIT.as_secs()
                );
            }
            return Ok(());
        }
        if pending.len() >= BATCH {
            flush(&mut pending)?;
        }
    }
    flush(&mut pending)?;
    Err("the agent ended the stream without saying why (its JVM exited?)".to_string())
}

/// A watched call as one JSON object, as `serde_json` writes it: what YAML output is made from,
/// and what [`call_json`] must write byte for byte.
#[derive(serde::Serialize)]
struct CallRecord<'a> {
    observation: u64,
    thread: &'a str,
    start_ms: u64,
    duration_ns: u64,
    args: &'a [&'a str],
    returned: &'a str,
    thrown: &'a str,
    method: &'a str,
    values: Values<'a>,
    this: &'a str,
    dropped: u64,
}

impl<'a> CallRecord<'a> {
    fn of(observation: u64, c: &'a CallView<'a>, dropped: u64) -> CallRecord<'a> {
        CallRecord {
            observation,
            thread: c.thread,
            start_ms: c.start_ms,
            duration_ns: c.duration_ns,
            args: &c.args,
            returned: c.returned,
            thrown: c.thrown,
            method: c.method,
            values: Values(&c.values),
            this: c.this,
            dropped,
        }
    }
}

/// A watched call's values as a JSON object, in their order.
struct Values<'a>(&'a [(&'a str, &'a str)]);

impl serde::Serialize for Values<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().copied())
    }
}

/// A streamed message, as it came off the wire, as `output` prints it, appended to `text`;
/// whether it is the last (the observation ended). Watched calls are read in place into
/// `scratch`'s room; any other message is decoded and goes through [`record`].
fn record_wire(text: &mut Vec<u8>, output: Output, message: &[u8], scratch: &mut CallView) -> Result<bool, String> {
    match wire::observed(message)? {
        wire::Observed::Calls { observation, dropped, mut calls } => {
            let mut view = std::mem::take(scratch).recycle();
            while let Some(bytes) = calls.next_call()? {
                wire::call(bytes, &mut view)?;
                call(text, output, observation, &mut view, dropped);
            }
            *scratch = view.recycle();
            Ok(false)
        }
        wire::Observed::Other => {
            let m = proto::Observed::decode(message).map_err(|e| format!("Observed message: {e}"))?;
            let ended = matches!(m.what, Some(What::Ended(_)));
            record(text, output, m);
            Ok(ended)
        }
    }
}

/// A streamed message as `output` prints it, appended to `text`. Watched and traced calls (up to
/// a million a second) are written straight into `text`, the rest through `serde_json::Value`.
fn record(text: &mut Vec<u8>, output: Output, m: proto::Observed) {
    let (id, dropped) = (m.observation, m.dropped);
    let Some(what) = m.what else { return };
    match what {
        What::Calls(batch) => batch.calls.iter().for_each(|c| call(text, output, id, &mut CallView::of(c), dropped)),
        What::Call(c) => call(text, output, id, &mut CallView::of(&c), dropped),
        What::Traces(batch) => batch.trees.iter().for_each(|t| trace(text, output, id, t, dropped)),
        What::Trace(t) => trace(text, output, id, &t, dropped),
        what => other(text, output, id, what, dropped),
    }
}

/// A watched call as `output` prints it, appended to `text` (the text line sorts its values).
fn call(text: &mut Vec<u8>, output: Output, id: u64, c: &mut CallView, dropped: u64) {
    match output {
        Output::Json => call_json(text, id, c, dropped),
        Output::Table | Output::Wide => call_line(text, c),
        Output::Yaml => text.extend_from_slice(
            record_text(
                output,
                || serde_json::to_value(CallRecord::of(id, c, dropped)).unwrap_or_default(),
                |_| String::new(),
            )
            .as_bytes(),
        ),
    }
}

/// A traced call as `output` prints it, appended to `text`.
fn trace(text: &mut Vec<u8>, output: Output, id: u64, t: &proto::TraceTree, dropped: u64) {
    match output {
        Output::Json => trace_json(text, id, t, dropped),
        Output::Table | Output::Wide => trace_text(text, t),
        Output::Yaml => text.extend_from_slice(
            record_text(
                output,
                || serde_json::to_value(TraceRecord::of(id, t, dropped)).unwrap_or_default(),
                |_| String::new(),
            )
            .as_bytes(),
        ),
    }
}

/// The fields a watched and a traced call's records start with, from the `{` on.
fn call_head_json(out: &mut Vec<u8>, id: u64, thread: &str, start_ms: u64, duration_ns: u64) {
    out.extend_from_slice(b"{\"observation\":");
    json::uint(out, id);
    out.extend_from_slice(b",\"thread\":");
    json::string(out, thread);
    out.extend_from_slice(b",\"start_ms\":");
    json::uint(out, start_ms);
    out.extend_from_slice(b",\"duration_ns\":");
    json::uint(out, duration_ns);
}

/// A [`CallRecord`] as one line of JSON.
fn call_json(out: &mut Vec<u8>, id: u64, c: &CallView, dropped: u64) {
    call_head_json(out, id, c.thread, c.start_ms, c.duration_ns);
    out.extend_from_slice(b",\"args\":");
    json::strings(out, &c.args);
    out.extend_from_slice(b",\"returned\":");
    json::string(out, c.returned);
    out.extend_from_slice(b",\"thrown\":");
    json::string(out, c.thrown);
    out.extend_from_slice(b",\"method\":");
    json::string(out, c.method);
    out.extend_from_slice(b",\"values\":");
    json::map(out, &c.values);
    out.extend_from_slice(b",\"this\":");
    json::string(out, c.this);
    out.extend_from_slice(b",\"dropped\":");
    json::uint(out, dropped);
    out.extend_from_slice(b"}\n");
}

/// A [`TraceRecord`] as one line of JSON.
fn trace_json(out: &mut Vec<u8>, id: u64, t: &proto::TraceTree, dropped: u64) {
    call_head_json(out, id, &t.thread, t.start_ms, t.duration_ns);
    out.extend_from_slice(b",\"method\":");
    json::string(out, &t.method);
    out.extend_from_slice(b",\"thrown\":");
    json::string(out, &t.thrown);
    out.extend_from_slice(b",\"calls\":");
    trace_calls_json(out, &t.calls);
    out.extend_from_slice(b",\"dropped\":");
    json::uint(out, dropped);
    out.extend_from_slice(b"}\n");
}

/// [`TraceCalls`] as a JSON array.
fn trace_calls_json(out: &mut Vec<u8>, calls: &[proto::TraceCall]) {
    out.push(b'[');
    for (i, c) in calls.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"site\":");
        json::string(out, &c.site);
        out.extend_from_slice(b",\"count\":");
        json::uint(out, c.count);
        out.extend_from_slice(b",\"total_ns\":");
        json::uint(out, c.total_ns);
        out.extend_from_slice(b",\"max_ns\":");
        json::uint(out, c.max_ns);
        out.extend_from_slice(b",\"threw\":");
        json::boolean(out, c.threw);
        out.extend_from_slice(b",\"calls\":");
        trace_calls_json(out, &c.calls);
        out.push(b'}');
    }
    out.push(b']');
}

/// Any other message (monitor windows, stack paths, snapshots, logs, notices, the end) as
/// `output` prints it, appended to `text`.
fn other(out: &mut Vec<u8>, output: Output, id: u64, what: What, dropped: u64) {
    let line = match what {
        What::Call(_) | What::Trace(_) | What::Calls(_) | What::Traces(_) => return,
        What::Window(w) => record_text(
            output,
            || {
                json!({"observation": id, "start_ms": w.start_ms, "end_ms": w.end_ms, "calls": w.calls,
                       "failures": w.failures, "mean_ms": w.mean_ms, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms,
                       "max_ms": w.max_ms, "dropped": dropped})
            },
            |_| {
                format!(
                    "{}  calls {:<7} failures {:<5} mean {:.3} ms  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
                    clock(w.end_ms),
                    w.calls,
                    w.failures,
                    w.mean_ms,
                    w.p50_ms,
                    w.p99_ms,
                    w.max_ms
                )
            },
        ),
        What::Path(p) => record_text(
            output,
            || json!({"observation": id, "frames": p.frames, "count": p.count, "dropped": dropped}),
            |_| format!("{:>8}  {}", p.count, p.frames.join("\n          <- ")),
        ),
        What::Snapshot(t) => record_text(
            output,
            || {
                json!({"observation": id, "thread": t.thread, "at_ms": t.at_ms, "location": t.location,
                       "locals": t.locals.iter().map(|l| json!({"name": l.name, "type": l.r#type, "value": l.value})).collect::<Vec<_>>(),
                       "stack": t.stack, "dropped": dropped})
            },
            |_| {
                let mut text = format!("{}  {}  {}", clock(t.at_ms), t.thread, t.location);
                for l in &t.locals {
                    text.push_str(&format!("\n    {} {} = {}", l.r#type, l.name, l.value));
                }
                for f in &t.stack {
                    text.push_str(&format!("\n    at {f}"));
                }
                text
            },
        ),
        What::Log(text) => record_text(output, || json!({"observation": id, "log": text}), |_| text.clone()),
        What::Notice(n) => record_text(output, || json!({"observation": id, "notice": n}), |_| format!("# {n}")),
        What::Ended(why) => record_text(
            output,
            || json!({"observation": id, "ended": why, "dropped": dropped}),
            |_| format!("# ended: {why}{}", dropped_text(dropped)),
        ),
    };
    out.extend_from_slice(line.as_bytes());
}

/// A traced call as one JSON object, as `serde_json` writes it (as [`CallRecord`], for
/// [`trace_json`]).
#[derive(serde::Serialize)]
struct TraceRecord<'a> {
    observation: u64,
    thread: &'a str,
    start_ms: u64,
    duration_ns: u64,
    method: &'a str,
    thrown: &'a str,
    calls: TraceCalls<'a>,
    dropped: u64,
}

impl<'a> TraceRecord<'a> {
    fn of(observation: u64, t: &'a proto::TraceTree, dropped: u64) -> TraceRecord<'a> {
        TraceRecord {
            observation,
            thread: &t.thread,
            start_ms: t.start_ms,
            duration_ns: t.duration_ns,
            method: &t.method,
            thrown: &t.thrown,
            calls: TraceCalls(&t.calls),
            dropped,
        }
    }
}

/// The calls a traced call made, each with the calls it made in turn.
struct TraceCalls<'a>(&'a [proto::TraceCall]);

#[derive(serde::Serialize)]
struct TraceCallRecord<'a> {
    site: &'a str,
    count: u64,
    total_ns: u64,
    max_ns: u64,
    threw: bool,
    calls: TraceCalls<'a>,
}

impl serde::Serialize for TraceCalls<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|c| TraceCallRecord {
            site: &c.site,
            count: c.count,
            total_ns: c.total_ns,
            max_ns: c.max_ns,
            threw: c.threw,
            calls: TraceCalls(&c.calls),
        }))
    }
}

/// A traced call as its lines of text: the call, then the calls it made (see [`trace_lines`]).
fn trace_text(out: &mut Vec<u8>, t: &proto::TraceTree) {
    clock_to(out, t.start_ms);
    out.extend_from_slice(b"  ");
    out.extend_from_slice(t.thread.as_bytes());
    out.extend_from_slice(b"  ");
    ms(out, t.duration_ns, 0);
    out.extend_from_slice(b" ms  ");
    out.extend_from_slice(t.method.as_bytes());
    if !t.thrown.is_empty() {
        out.extend_from_slice(b" threw ");
        out.extend_from_slice(t.thrown.as_bytes());
    }
    trace_lines(out, &t.calls, t.duration_ns, 1);
    out.push(b'\n');
}

/// The calls of a traced call, one a line, indented by level, with their share of `whole`.
fn trace_lines(out: &mut Vec<u8>, calls: &[proto::TraceCall], whole: u64, level: usize) {
    for c in calls {
        out.push(b'\n');
        for _ in 0..level {
            out.extend_from_slice(b"    ");
        }
        out.extend_from_slice(b"`--- ");
        share(out, c.total_ns, whole);
        out.extend_from_slice(b"% ");
        ms(out, c.total_ns, 0);
        out.extend_from_slice(b" ms  ");
        out.extend_from_slice(c.site.as_bytes());
        if c.count > 1 {
            out.extend_from_slice(b" x");
            json::uint(out, c.count);
            out.extend_from_slice(b" (max ");
            ms(out, c.max_ns, 0);
            out.extend_from_slice(b" ms)");
        }
        if c.threw {
            out.extend_from_slice(b" threw");
        }
        trace_lines(out, &c.calls, whole, level + 1);
    }
}

fn dropped_text(dropped: u64) -> String {
    if dropped == 0 {
        String::new()
    } else {
        format!(" ({dropped} reports dropped: the client read too slowly)")
    }
}

/// A watched call as a line of text: when, thread, time taken, the call and its outcome, the
/// values in the order of their `key=value` text (into which `c.values` is sorted).
fn call_line(out: &mut Vec<u8>, c: &mut CallView) {
    clock_to(out, c.start_ms);
    out.extend_from_slice(b"  ");
    out.extend_from_slice(c.thread.as_bytes());
    // `{:<16}`: padded to 16 characters
    out.extend(std::iter::repeat_n(b' ', 16usize.saturating_sub(c.thread.chars().count())));
    out.push(b' ');
    ms(out, c.duration_ns, 9);
    out.extend_from_slice(b" ms  ");
    out.extend_from_slice(c.method.as_bytes());
    out.push(b'(');
    for (i, a) in c.args.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(a.as_bytes());
    }
    out.extend_from_slice(b") ");
    match (c.thrown.is_empty(), c.returned.is_empty()) {
        (true, true) => out.extend_from_slice(b"-> (void)"),
        (true, false) => {
            out.extend_from_slice(b"-> ");
            out.extend_from_slice(c.returned.as_bytes());
        }
        (false, _) => {
            out.extend_from_slice(b"threw ");
            out.extend_from_slice(c.thrown.as_bytes());
        }
    }
    if !c.values.is_empty() {
        fn text<'a>(&(k, v): &(&'a str, &'a str)) -> impl Iterator<Item = u8> + 'a {
            k.bytes().chain([b'=']).chain(v.bytes())
        }
        c.values.sort_unstable_by(|a, b| text(a).cmp(text(b)));
        for (i, kv) in c.values.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"  " } else { b" " });
            out.extend(text(kv));
        }
    }
    if !c.this.is_empty() {
        out.extend_from_slice(b"  this=");
        out.extend_from_slice(c.this.as_bytes());
    }
    out.push(b'\n');
}

/// `ns` in milliseconds as `format!("{:>width$.3}", ns as f64 / 1e6)` writes it. In integers:
/// the float's rounding to the microsecond is that of the exact quotient, except at a tie
/// (`ns % 1000 == 500`) or where the float has too few digits, left to the float formatter.
fn ms(out: &mut Vec<u8>, ns: u64, width: usize) {
    if ns % 1000 == 500 || ns >= 1_000_000_000_000_000 {
        use std::io::Write;
        let _ = write!(out, "{:>width$.3}", ns as f64 / 1e6);
        return;
    }
    let us = ns / 1000 + u64::from(ns % 1000 > 500);
    fixed(out, us / 1000, us % 1000, 3, width);
}

/// `part` as a percentage of `whole` (0 when `whole` is), as `format!("{:>5.1}", 100.0 * part as
/// f64 / whole as f64)` writes it: in integers as [`ms`] does, but for a tie or large values.
fn share(out: &mut Vec<u8>, part: u64, whole: u64) {
    if whole == 0 {
        out.extend_from_slice(b"  0.0");
        return;
    }
    if part < 1_000_000_000_000 && whole < 1 << 53 {
        let (tenths, rest) = (part * 1000 / whole, part * 1000 % whole);
        if 2 * rest != whole {
            let tenths = tenths + u64::from(2 * rest > whole);
            fixed(out, tenths / 10, tenths % 10, 1, 5);
            return;
        }
    }
    use std::io::Write;
    let _ = write!(out, "{:>5.1}", 100.0 * part as f64 / whole as f64);
}

/// `units.fraction` with `digits` digits after the point (`fraction` < 10^digits), right-aligned in
/// `width` characters.
fn fixed(out: &mut Vec<u8>, units: u64, fraction: u64, digits: u32, width: usize) {
    let mut text = [0u8; 32];
    let mut at = text.len();
    let mut f = fraction;
    for _ in 0..digits {
        at -= 1;
        text[at] = b'0' + (f % 10) as u8;
        f /= 10;
    }
    at -= 1;
    text[at] = b'.';
    let mut u = units;
    loop {
        at -= 1;
        text[at] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    let text = &text[at..];
    out.extend(std::iter::repeat_n(b' ', width.saturating_sub(text.len())));
    out.extend_from_slice(text);
}

/// `HH:MM:SS.mmm` UTC of a Unix time in milliseconds.
fn clock(ms: u64) -> String {
    let mut text = Vec::with_capacity(12);
    clock_to(&mut text, ms);
    String::from_utf8(text).unwrap_or_default()
}

/// [`clock`], appended to `out`.
fn clock_to(out: &mut Vec<u8>, ms: u64) {
    let s = ms / 1000;
    let two = |n: u64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    out.extend_from_slice(&two((s / 3600) % 24));
    out.push(b':');
    out.extend_from_slice(&two((s / 60) % 60));
    out.push(b':');
    out.extend_from_slice(&two(s % 60));
    out.push(b'.');
    let ms = ms % 1000;
    out.extend_from_slice(&[b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8]);
}

fn info_json(o: &proto::ObservationInfo) -> serde_json::Value {
    json!({"id": o.id, "kind": o.kind, "target": o.target, "condition": o.condition, "started_ms": o.started_ms,
           "calls": o.calls, "reported": o.reported, "dropped": o.dropped, "who": o.who})
}

pub async fn observations(conn: &Conn) -> Result<(), String> {
    let r = rpc(conn.client().await?.observations(proto::ObservationsRequest {}).await)?;
    print(conn.output, json!(r.observations.iter().map(info_json).collect::<Vec<_>>()), |wide| {
        let rows: Vec<Vec<String>> = r
            .observations
            .iter()
            .map(|o| {
                vec![
                    o.id.to_string(),
                    o.kind.clone(),
                    o.target.clone(),
                    o.calls.to_string(),
                    o.reported.to_string(),
                    o.dropped.to_string(),
                    o.who.clone(),
                    o.condition.clone(),
                ]
            })
            .collect();
        table(
            &["ID", "KIND", "TARGET", "CALLS", "REPORTED", "DROPPED", "WHO", "CONDITION"],
            &rows,
            wide,
            "no observations",
        )
    })
}

pub async fn stop(conn: &Conn, id: u64) -> Result<(), String> {
    let r = rpc(conn.client().await?.stop_observation(proto::StopObservationRequest { id, who: operator() }).await)?;
    print(conn.output, json!(r.observations.iter().map(info_json).collect::<Vec<_>>()), |_| {
        r.observations.iter().map(|o| format!("stopped observation {} ({} {})\n", o.id, o.kind, o.target)).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings a rendered value may hold: quotes, backslashes, every kind of control character,
    /// non-ASCII, nothing.
    const AWKWARD: &[&str] = &[
        "",
        "main",
        "say \"hi\"",
        "C:\\temp\\",
        "line\nbreak\r\ttab\u{8}\u{c}",
        "\u{0}\u{1}\u{1b}\u{1f}\u{7f}",
        "café 漢字 🦀 \u{2028}",
        "\\\"",
    ];

    /// Numbers of every size, with the ties of the rounding to the microsecond.
    fn numbers() -> Vec<u64> {
        let mut n = vec![0, 1, 499, 500, 501, 999, 1000, 1500, 2500, 999_500, 1_000_500, 123_456_789];
        n.extend([u64::from(u32::MAX), (1 << 53) - 1, 1 << 53, 999_999_999_999_999_500, u64::MAX]);
        n.extend((0..64).map(|shift| 0x9e37_79b9_7f4a_7c15u64 >> shift));
        n
    }

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    fn calls(seed: usize) -> Vec<proto::ObservedCall> {
        let numbers = numbers();
        (0..AWKWARD.len() * 3)
            .map(|i| {
                let s = |k: usize| AWKWARD[(seed + i * 3 + k) % AWKWARD.len()].to_string();
                let n = |k: usize| numbers[(seed + i * 5 + k) % numbers.len()];
                proto::ObservedCall {
                    thread: s(0),
                    start_ms: n(0),
                    duration_ns: n(1),
                    args: (0..i % 4).map(s).collect(),
                    returned: if i % 3 == 0 { String::new() } else { s(1) },
                    thrown: if i % 4 == 1 { s(2) } else { String::new() },
                    method: s(3),
                    values: (0..i % 5).map(|k| (format!("{}{k}", s(k)), s(k + 1))).collect(),
                    this: if i % 2 == 0 { String::new() } else { s(4) },
                }
            })
            .collect()
    }

    fn trace_calls(seed: usize, depth: usize) -> Vec<proto::TraceCall> {
        let numbers = numbers();
        if depth == 0 {
            return Vec::new();
        }
        (0..seed % 3 + 1)
            .map(|i| proto::TraceCall {
                site: AWKWARD[(seed + i) % AWKWARD.len()].to_string(),
                count: [1, 2, 7, 1][(seed + i) % 4],
                total_ns: numbers[(seed * 7 + i) % numbers.len()] % 10_000_000,
                max_ns: numbers[(seed * 11 + i) % numbers.len()],
                threw: (seed + i) % 3 == 0,
                calls: trace_calls(seed + i + 1, depth - 1),
            })
            .collect()
    }

    fn trees() -> Vec<proto::TraceTree> {
        let numbers = numbers();
        (0..24)
            .map(|i| proto::TraceTree {
                thread: AWKWARD[i % AWKWARD.len()].to_string(),
                start_ms: numbers[i % numbers.len()],
                duration_ns: [0, 1000, 4_000, 1_000_000, 3, u64::MAX][i % 6],
                calls: trace_calls(i, i % 4),
                thrown: if i % 3 == 0 { AWKWARD[(i + 2) % AWKWARD.len()].to_string() } else { String::new() },
                method: AWKWARD[(i + 5) % AWKWARD.len()].to_string(),
            })
            .collect()
    }

    #[test]
    fn watched_and_traced_calls_are_written_as_serde_json_writes_them() {
        for seed in 0..4 {
            for c in calls(seed) {
                let (id, dropped) = (seed as u64 * 1000, (seed as u64) << 40);
                let view = CallView::of(&c);
                let mut expected = serde_json::to_string(&CallRecord::of(id, &view, dropped)).unwrap();
                expected.push('\n');
                assert_eq!(text(|o| call_json(o, id, &view, dropped)), expected);
            }
        }
        for t in trees() {
            let mut expected = serde_json::to_string(&TraceRecord::of(7, &t, 3)).unwrap();
            expected.push('\n');
            assert_eq!(text(|o| trace_json(o, 7, &t, 3)), expected);
        }
        // the map in its own order, whatever the hasher made of it, keys and all
        let c = proto::ObservedCall {
            values: (0..50).map(|k| (format!("args[{k}].\"x\""), format!("v\u{1}{k}"))).collect(),
            ..Default::default()
        };
        let view = CallView::of(&c);
        let line = text(|o| call_json(o, 1, &view, 0));
        assert_eq!(line, serde_json::to_string(&CallRecord::of(1, &view, 0)).unwrap() + "\n");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["values"].as_object().unwrap().len(), 50);
    }

    #[test]
    fn a_batch_is_written_record_by_record_in_order_and_other_messages_as_before() {
        let calls = calls(1);
        let batch = proto::Observed {
            observation: 4,
            what: Some(What::Calls(proto::ObservedCalls { calls: calls.clone() })),
            dropped: 2,
        };
        let expected: String = calls
            .iter()
            .map(|c| serde_json::to_string(&CallRecord::of(4, &CallView::of(c), 2)).unwrap() + "\n")
            .collect();
        assert_eq!(text(|o| record(o, Output::Json, batch.clone())), expected);
        let expected: String = calls.iter().map(old_call_line).collect();
        assert_eq!(text(|o| record(o, Output::Table, batch.clone())), expected);
        assert_eq!(text(|o| record(o, Output::Wide, batch.clone())), expected);
        let yaml = text(|o| record(o, Output::Yaml, batch));
        assert_eq!(yaml.matches("---\n").count(), calls.len());
        assert!(yaml.contains("observation: 4"), "{yaml}");
        let trees = trees();
        let batch = proto::Observed {
            observation: 5,
            what: Some(What::Traces(proto::TraceTrees { trees: trees.clone() })),
            dropped: 0,
        };
        let expected: String =
            trees.iter().map(|t| serde_json::to_string(&TraceRecord::of(5, t, 0)).unwrap() + "\n").collect();
        assert_eq!(text(|o| record(o, Output::Json, batch.clone())), expected);
        let expected: String = trees.iter().map(old_trace_text).collect();
        assert_eq!(text(|o| record(o, Output::Table, batch)), expected);
        let ended = proto::Observed { observation: 5, what: Some(What::Ended("done \"now\"".into())), dropped: 9 };
        assert_eq!(
            text(|o| record(o, Output::Json, ended.clone())),
            "{\"dropped\":9,\"ended\":\"done \\\"now\\\"\",\"observation\":5}\n"
        );
        assert_eq!(
            text(|o| record(o, Output::Table, ended)),
            "# ended: done \"now\" (9 reports dropped: the client read too slowly)\n"
        );
    }

    /// `message` as the wire path prints it, and whether it ended the observation.
    fn wire_text(output: Output, message: &[u8], scratch: &mut CallView) -> Result<(String, bool), String> {
        let mut out = Vec::new();
        let ended = record_wire(&mut out, output, message, scratch)?;
        Ok((String::from_utf8(out).expect("UTF-8"), ended))
    }

    /// Each line as JSON, for records whose `values` (a map) may come in another order.
    fn parsed(lines: &str) -> Vec<serde_json::Value> {
        lines.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    #[test]
    fn watched_calls_read_off_the_wire_are_printed_as_the_decoded_message_is() {
        let mut scratch = CallView::default();
        for seed in 0..6 {
            let calls = calls(seed);
            let (id, dropped) = (seed as u64 + 1, (seed as u64) << 33);
            let batch = proto::Observed {
                observation: id,
                what: Some(What::Calls(proto::ObservedCalls { calls: calls.clone() })),
                dropped,
            };
            let singles =
                calls.iter().map(|c| proto::Observed { observation: id, what: Some(What::Call(c.clone())), dropped });
            for m in std::iter::once(batch).chain(singles) {
                let bytes = m.encode_to_vec();
                // what the prost path prints for the message as it arrives (decoded from its bytes)
                let decoded = proto::Observed::decode(bytes.as_slice()).unwrap();
                for output in [Output::Json, Output::Table, Output::Wide, Output::Yaml] {
                    let expected = text(|o| record(o, output, decoded.clone()));
                    let (got, ended) = wire_text(output, &bytes, &mut scratch).unwrap();
                    assert!(!ended);
                    assert!(!got.is_empty());
                    if output == Output::Json {
                        // byte for byte where the map's order cannot differ, else as JSON
                        assert_eq!(parsed(&got), parsed(&expected), "seed {seed}");
                        for (g, e) in got.lines().zip(expected.lines()) {
                            if parsed(g)[0]["values"].as_object().unwrap().len() <= 1 {
                                assert_eq!(g, e, "seed {seed}");
                            }
                        }
                    } else {
                        assert_eq!(got, expected, "seed {seed} {output:?}");
                    }
                }
            }
        }
        // any other message goes the prost way; the end says so
        let ended = proto::Observed { observation: 5, what: Some(What::Ended("done \"now\"".into())), dropped: 9 };
        for output in [Output::Json, Output::Table] {
            let (got, is_end) = wire_text(output, &ended.encode_to_vec(), &mut scratch).unwrap();
            assert!(is_end);
            assert_eq!(got, text(|o| record(o, output, ended.clone())));
        }
        let notice = proto::Observed { observation: 5, what: Some(What::Notice("sampling".into())), dropped: 0 };
        let (got, is_end) = wire_text(Output::Json, &notice.encode_to_vec(), &mut scratch).unwrap();
        assert_eq!((got.as_str(), is_end), ("{\"notice\":\"sampling\",\"observation\":5}\n", false));
        let trees = proto::Observed {
            observation: 2,
            what: Some(What::Traces(proto::TraceTrees { trees: trees() })),
            dropped: 1,
        };
        let (got, _) = wire_text(Output::Table, &trees.encode_to_vec(), &mut scratch).unwrap();
        assert_eq!(got, text(|o| record(o, Output::Table, trees)));
    }

    #[test]
    fn a_message_that_does_not_parse_is_an_error_naming_what_was_wrong() {
        let c = proto::ObservedCall { thread: "main".into(), method: "work()".into(), ..Default::default() };
        let m = proto::Observed {
            observation: 1,
            what: Some(What::Calls(proto::ObservedCalls { calls: vec![c] })),
            dropped: 0,
        };
        let bytes = m.encode_to_vec();
        let mut scratch = CallView::default();
        let cut = wire_text(Output::Json, &bytes[..bytes.len() - 3], &mut scratch).unwrap_err();
        assert!(cut.contains("cut short"), "{cut}");
        let mut bad = bytes.clone();
        let at = bad.windows(4).position(|w| w == b"main").unwrap();
        bad[at + 1] = 0xff;
        let not_utf8 = wire_text(Output::Table, &bad, &mut scratch).unwrap_err();
        assert!(not_utf8.contains("ObservedCall.thread is not UTF-8"), "{not_utf8}");
        // a message that is not a call, bad alike, fails in prost
        let notice = proto::Observed { observation: 1, what: Some(What::Notice("note".into())), dropped: 0 };
        let mut bad = notice.encode_to_vec();
        *bad.last_mut().unwrap() = 0xff;
        let e = wire_text(Output::Json, &bad, &mut scratch).unwrap_err();
        assert!(e.starts_with("Observed message: "), "{e}");
    }

    #[test]
    fn milliseconds_shares_and_clocks_are_written_as_the_float_formatter_writes_them() {
        let mut ns: Vec<u64> = (0..300_000).chain(numbers()).collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ns.push(x >> (x % 64));
            ns.push((x % 100_000) * 1000 + 500);
        }
        for &n in &ns {
            for width in [0, 9] {
                assert_eq!(text(|o| ms(o, n, width)), format!("{:>width$.3}", n as f64 / 1e6), "{n} ns");
            }
            let ms_of_day = n % 200_000_000_000_000;
            assert_eq!(clock(ms_of_day), old_clock(ms_of_day));
        }
        for (i, &part) in ns.iter().enumerate().step_by(7) {
            let whole =
                [0, 1, 3, 7, 1000, 2000, 4_000, 333_333, part, part / 2 + 1, part.wrapping_mul(3), u64::MAX][i % 12];
            let expected = if whole > 0 { 100.0 * part as f64 / whole as f64 } else { 0.0 };
            assert_eq!(text(|o| share(o, part, whole)), format!("{expected:>5.1}"), "{part} of {whole}");
        }
        // ties of the tenth of a percent, both ways
        for (part, whole) in [(1, 2000), (3, 2000), (5, 2000), (1, 400), (7, 16_000), (999, 2000)] {
            let expected = 100.0 * part as f64 / whole as f64;
            assert_eq!(text(|o| share(o, part, whole)), format!("{expected:>5.1}"), "{part} of {whole}");
        }
    }

    /// How the text lines were written before they were written in place: what they must match.
    fn old_call_line(c: &proto::ObservedCall) -> String {
        let outcome = if c.thrown.is_empty() { format!("-> {}", c.returned) } else { format!("threw {}", c.thrown) };
        let outcome = if c.thrown.is_empty() && c.returned.is_empty() { "-> (void)".to_string() } else { outcome };
        let mut values: Vec<String> = c.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        values.sort();
        let this = if c.this.is_empty() { String::new() } else { format!("  this={}", c.this) };
        let values = if values.is_empty() { String::new() } else { format!("  {}", values.join(" ")) };
        format!(
            "{}  {:<16} {:>9.3} ms  {}({}) {outcome}{values}{this}\n",
            old_clock(c.start_ms),
            c.thread,
            c.duration_ns as f64 / 1e6,
            c.method,
            c.args.join(", ")
        )
    }

    fn old_trace_text(t: &proto::TraceTree) -> String {
        fn lines(text: &mut String, calls: &[proto::TraceCall], whole: u64, level: usize) {
            let ms = |ns: u64| ns as f64 / 1e6;
            for c in calls {
                let share = if whole > 0 { 100.0 * c.total_ns as f64 / whole as f64 } else { 0.0 };
                let times =
                    if c.count > 1 { format!(" x{} (max {:.3} ms)", c.count, ms(c.max_ns)) } else { String::new() };
                let threw = if c.threw { " threw" } else { "" };
                let indent = "    ".repeat(level);
                text.push_str(&format!(
                    "\n{indent}`--- {share:>5.1}% {:.3} ms  {}{times}{threw}",
                    ms(c.total_ns),
                    c.site
                ));
                lines(text, &c.calls, whole, level + 1);
            }
        }
        let outcome = if t.thrown.is_empty() { String::new() } else { format!(" threw {}", t.thrown) };
        let mut text = format!(
            "{}  {}  {:.3} ms  {}{outcome}",
            old_clock(t.start_ms),
            t.thread,
            t.duration_ns as f64 / 1e6,
            t.method
        );
        lines(&mut text, &t.calls, t.duration_ns, 1);
        text + "\n"
    }

    fn old_clock(ms: u64) -> String {
        let s = ms / 1000;
        format!("{:02}:{:02}:{:02}.{:03}", (s / 3600) % 24, (s / 60) % 60, s % 60, ms % 1000)
    }
}
