//! `repairctl watch` and `monitor`: a method observed while the command runs, and `observations`
//! and `stop` for the ones in progress.

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
    let mut stream = rpc(conn.client().await?.observe(req).await)?;
    // Records are written in batches: while the agent streams faster than a write a record
    // could keep up with, they pile up here and go out together once nothing more is ready.
    const BATCH: usize = 1 << 16;
    let mut pending = Vec::with_capacity(2 * BATCH);
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
        let m = item.map_err(|s| describe(&s))?;
        let ended = matches!(m.what, Some(What::Ended(_)));
        record(&mut pending, conn.output, m);
        if ended {
            return flush(&mut pending);
        }
        if pending.len() >= BATCH {
            flush(&mut pending)?;
        }
    }
    flush(&mut pending)?;
    Err("the agent ended the stream without saying why (its JVM exited?)".to_string())
}

/// A watched call as one JSON object: serialized straight from the message (thousands of these
/// a second go through here).
#[derive(serde::Serialize)]
struct CallRecord<'a> {
    observation: u64,
    thread: &'a str,
    start_ms: u64,
    duration_ns: u64,
    args: &'a [String],
    returned: &'a str,
    thrown: &'a str,
    method: &'a str,
    values: &'a std::collections::HashMap<String, String>,
    this: &'a str,
    dropped: u64,
}

impl<'a> CallRecord<'a> {
    fn of(observation: u64, c: &'a proto::ObservedCall, dropped: u64) -> CallRecord<'a> {
        CallRecord {
            observation,
            thread: &c.thread,
            start_ms: c.start_ms,
            duration_ns: c.duration_ns,
            args: &c.args,
            returned: &c.returned,
            thrown: &c.thrown,
            method: &c.method,
            values: &c.values,
            this: &c.this,
            dropped,
        }
    }
}

/// A streamed message as `output` prints it, appended to `text`.
fn record(text: &mut Vec<u8>, output: Output, m: proto::Observed) {
    let (id, dropped) = (m.observation, m.dropped);
    let Some(what) = m.what else { return };
    match what {
        What::Calls(batch) => {
            for c in batch.calls {
                record(text, output, proto::Observed { observation: id, what: Some(What::Call(c)), dropped });
            }
            return;
        }
        What::Traces(batch) => {
            for t in batch.trees {
                record(text, output, proto::Observed { observation: id, what: Some(What::Trace(t)), dropped });
            }
            return;
        }
        _ => {}
    }
    if let (What::Trace(t), Output::Json) = (&what, output) {
        let r = TraceRecord::of(id, t, dropped);
        if serde_json::to_writer(&mut *text, &r).is_ok() {
            text.push(b'\n');
        }
        return;
    }
    if let What::Call(c) = &what {
        let r = CallRecord::of(id, c, dropped);
        if output == Output::Json {
            if serde_json::to_writer(&mut *text, &r).is_ok() {
                text.push(b'\n');
            }
            return;
        }
        let line = record_text(output, || serde_json::to_value(&r).unwrap_or_default(), |_| call_line(c));
        text.extend_from_slice(line.as_bytes());
        return;
    }
    let line = match what {
        What::Call(_) => return,
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
        What::Trace(t) => record_text(
            output,
            || serde_json::to_value(TraceRecord::of(id, &t, dropped)).unwrap_or_default(),
            |_| {
                let outcome = if t.thrown.is_empty() { String::new() } else { format!(" threw {}", t.thrown) };
                let mut text = format!(
                    "{}  {}  {:.3} ms  {}{outcome}",
                    clock(t.start_ms),
                    t.thread,
                    t.duration_ns as f64 / 1e6,
                    t.method
                );
                trace_lines(&mut text, &t.calls, t.duration_ns, 1);
                text
            },
        ),
        What::Log(text) => record_text(output, || json!({"observation": id, "log": text}), |_| text.clone()),
        What::Notice(n) => record_text(output, || json!({"observation": id, "notice": n}), |_| format!("# {n}")),
        What::Calls(_) | What::Traces(_) => return,
        What::Ended(why) => record_text(
            output,
            || json!({"observation": id, "ended": why, "dropped": dropped}),
            |_| format!("# ended: {why}{}", dropped_text(dropped)),
        ),
    };
    text.extend_from_slice(line.as_bytes());
}

/// A traced call as one JSON object, serialized straight from the message (as [`CallRecord`]).
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

/// The calls of a traced call, one a line, indented by level, with their share of `whole`.
fn trace_lines(text: &mut String, calls: &[proto::TraceCall], whole: u64, level: usize) {
    let ms = |ns: u64| ns as f64 / 1e6;
    for c in calls {
        let share = if whole > 0 { 100.0 * c.total_ns as f64 / whole as f64 } else { 0.0 };
        let times = if c.count > 1 { format!(" x{} (max {:.3} ms)", c.count, ms(c.max_ns)) } else { String::new() };
        let threw = if c.threw { " threw" } else { "" };
        let indent = "    ".repeat(level);
        text.push_str(&format!("\n{indent}`--- {share:>5.1}% {:.3} ms  {}{times}{threw}", ms(c.total_ns), c.site));
        trace_lines(text, &c.calls, whole, level + 1);
    }
}

fn dropped_text(dropped: u64) -> String {
    if dropped == 0 {
        String::new()
    } else {
        format!(" ({dropped} reports dropped: the client read too slowly)")
    }
}

fn call_line(c: &proto::ObservedCall) -> String {
    let outcome = if c.thrown.is_empty() { format!("-> {}", c.returned) } else { format!("threw {}", c.thrown) };
    let outcome = if c.thrown.is_empty() && c.returned.is_empty() { "-> (void)".to_string() } else { outcome };
    let mut values: Vec<String> = c.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    values.sort();
    let this = if c.this.is_empty() { String::new() } else { format!("  this={}", c.this) };
    let values = if values.is_empty() { String::new() } else { format!("  {}", values.join(" ")) };
    format!(
        "{}  {:<16} {:>9.3} ms  {}({}) {outcome}{values}{this}",
        clock(c.start_ms),
        c.thread,
        c.duration_ns as f64 / 1e6,
        c.method,
        c.args.join(", ")
    )
}

/// `HH:MM:SS.mmm` UTC of a Unix time in milliseconds.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}", (s / 3600) % 24, (s / 60) % 60, s % 60, ms % 1000)
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
