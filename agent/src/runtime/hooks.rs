//! The runtime hooks: the class `repair/rt/Hooks` that injected code calls, generated here and
//! defined in the bootstrap loader (so every class loader sees it), with its methods bound to the
//! functions below by `RegisterNatives`.
//!
//! THE CONTRACT (names and descriptors come from `repair_bytecode::transform::hooks`, which the
//! transforms inject calls to; all are `public static native` in `public final class
//! repair.rt.Hooks`):
//!
//! | method                                         | called when                                  |
//! |------------------------------------------------|----------------------------------------------|
//! | `fallback(ILjava/lang/Throwable;)V`            | a guard handler took its fallback            |
//! | `enter(I)V`                                    | a probed method is entered                   |
//! | `enterArgs(I[Ljava/lang/Object;)V`             | entered, with the arguments boxed            |
//! | `enterAt(IJ)V`                                 | entered, with `System.nanoTime()`            |
//! | `exit(I)V`                                     | a probed method returns                      |
//! | `exitValue(ILjava/lang/Object;)V`              | returns, with the value boxed (null for void)|
//! | `exitAt(IJ)V`                                  | returns, with `System.nanoTime()`            |
//! | `thrown(ILjava/lang/Throwable;)V`              | exits by an exception (rethrown after)       |
//! | `line(II)V`                                    | a probed source line is about to run         |
//! | `recursionEnter(I)Z`                           | a recursion guard's method is called: run?   |
//! | `recursionExit(I)V`                            | it leaves its body (return or exception)     |
//!
//! The `int` is a report id the patch manager hands to the transform (one per patch), so every
//! report is counted for the patch that caused it. These run on application threads: they only
//! bump atomics, except `fallback`/`thrown`, which are on the exceptional path and also record
//! what was thrown. They never throw into Java and never panic across FFI.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use repair_bytecode::classfile::{ACC_FINAL, ACC_NATIVE, ACC_PUBLIC, ACC_STATIC};
use repair_bytecode::transform::hooks as contract;
use repair_bytecode::{ClassFile, ConstantPool, Member};

use super::faults::FaultLog;
use crate::jvm::ffi::HookCalls;
use crate::jvm::{Jni, Jvmti, Local};

const ACC_SUPER: u16 = 0x0020;

/// The class file of `repair/rt/Hooks`: only native methods, so no method has code.
pub fn class_bytes() -> Result<Vec<u8>, repair_bytecode::Error> {
    // An empty pool (count 1: slot 0 only), read the way a class file stores it.
    let mut pool = ConstantPool::parse(&mut repair_bytecode::bytes::Reader::new(&[0, 1], "hooks pool"))?;
    let this_class = pool.add_class(contract::CLASS)?;
    let super_class = pool.add_class("java/lang/Object")?;
    let mut methods = Vec::new();
    for (name, descriptor) in contract::METHODS {
        methods.push(Member {
            access: ACC_PUBLIC | ACC_STATIC | ACC_NATIVE,
            name: pool.add_utf8(name)?,
            descriptor: pool.add_utf8(descriptor)?,
            attributes: Vec::new(),
        });
    }
    ClassFile {
        minor: 0,
        major: 52,
        pool,
        access: ACC_PUBLIC | ACC_FINAL | ACC_SUPER,
        this_class,
        super_class,
        interfaces: Vec::new(),
        fields: Vec::new(),
        methods,
        attributes: Vec::new(),
    }
    .to_bytes()
}

/// Defines `repair/rt/Hooks` in the bootstrap loader and binds its natives to `hooks`.
pub fn define(jni: &Jni<'_>, hooks: &'static dyn HookCalls) -> Result<(), String> {
    let bytes = class_bytes().map_err(|e| format!("cannot generate {}: {e}", contract::CLASS))?;
    let class = jni.define_bootstrap_class(contract::CLASS, &bytes)?;
    crate::jvm::ffi::bind_hooks(jni, &class, hooks)
}

/// Whether a `repair/rt/Hooks` class already exists in this JVM (another copy of the agent).
pub fn already_defined(jni: &Jni<'_>) -> bool {
    jni.find_class(contract::CLASS).is_some()
}

/// Counters of one report id.
#[derive(Debug, Default)]
pub struct ReportCounters {
    pub fallbacks: AtomicU64,
    pub enters: AtomicU64,
    pub exits: AtomicU64,
    pub throws: AtomicU64,
    pub lines: AtomicU64,
    /// Sum and count of `exitAt - enterAt` on the same thread, for a mean duration.
    pub timed_nanos: AtomicU64,
    pub timed_calls: AtomicU64,
    /// The last line reported by `line`.
    pub last_line: AtomicI64,
    /// What the last fallback caught and the last captured values, as short text.
    pub last: RwLock<LastSeen>,
}

#[derive(Debug, Default, Clone)]
pub struct LastSeen {
    pub fallback_exception: Option<String>,
    pub args: Option<String>,
    pub value: Option<String>,
}

/// Report id → counters. Ids are registered by the patch manager; reports for an unknown id
/// (a patch rolled back while a thread was still in the old code) are counted under it anyway.
#[derive(Default)]
pub struct Reports {
    by_id: RwLock<HashMap<i32, Arc<ReportCounters>>>,
}

impl Reports {
    pub fn counters(&self, id: i32) -> Arc<ReportCounters> {
        if let Some(c) = self.by_id.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return c.clone();
        }
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).entry(id).or_default().clone()
    }

    /// Fresh counters for `id`, handed to a new patch (ids are reused once their patch is gone).
    pub fn reset(&self, id: i32) {
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).insert(id, Arc::default());
    }

    /// `(id, counters)` for every id that has reported, sorted by id.
    pub fn all(&self) -> Vec<(i32, Arc<ReportCounters>)> {
        let mut v: Vec<_> =
            self.by_id.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, c)| (*k, c.clone())).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }
}

thread_local! {
    /// `(report id, enterAt nanos)` of the timed probes this thread is inside.
    static TIMED: RefCell<Vec<(i32, i64)>> = const { RefCell::new(Vec::new()) };
    /// The report id and time of this thread's last guard fallback: a fault that follows it on
    /// this thread may be the fallback's doing (the caller got a `null`).
    static LAST_FALLBACK: Cell<Option<(i32, Instant)>> = const { Cell::new(None) };
}

/// This thread's last guard fallback: its report id and when it ran.
pub fn last_fallback() -> Option<(i32, Instant)> {
    LAST_FALLBACK.with(Cell::get)
}

/// Deeper nesting than this (runaway recursion) is not timed.
const MAX_TIMED_DEPTH: usize = 256;

/// What each `Hooks` native does with its report.
impl Reports {
    pub fn fallback(&self, jni: &Jni<'_>, id: i32, thrown: Option<&Local<'_>>) {
        let c = self.fallback_taken(id);
        let Some(thrown) = thrown else { return };
        let class = jni.class_name_of_object(thrown);
        let text = match jni.throwable_message(thrown) {
            Some(m) => format!("{class}: {m}"),
            None => class,
        };
        c.last.write().unwrap_or_else(|e| e.into_inner()).fallback_exception = Some(text);
    }

    /// Counts a fallback of `id` taken on this thread (a guard's, or a recursion guard's, which
    /// catches nothing); returns its counters.
    pub fn fallback_taken(&self, id: i32) -> Arc<ReportCounters> {
        let c = self.counters(id);
        c.fallbacks.fetch_add(1, Ordering::Relaxed);
        LAST_FALLBACK.with(|l| l.set(Some((id, Instant::now()))));
        c
    }

    pub fn enter(&self, id: i32, nanos: Option<i64>) {
        self.counters(id).enters.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = nanos {
            TIMED.with(|t| {
                let mut t = t.borrow_mut();
                if t.len() < MAX_TIMED_DEPTH {
                    t.push((id, n));
                }
            });
        }
    }

    pub fn enter_args(&self, jni: &Jni<'_>, id: i32, args: Option<&Local<'_>>) {
        let c = self.counters(id);
        c.enters.fetch_add(1, Ordering::Relaxed);
        let Some(args) = args else { return };
        let text = jni.array_text(args, 8);
        c.last.write().unwrap_or_else(|e| e.into_inner()).args = Some(text);
    }

    pub fn exit(&self, id: i32, nanos: Option<i64>) {
        let c = self.counters(id);
        c.exits.fetch_add(1, Ordering::Relaxed);
        if let Some(end) = nanos {
            let start = TIMED.with(|t| {
                let mut t = t.borrow_mut();
                let at = t.iter().rposition(|(i, _)| *i == id)?;
                let (_, start) = t[at];
                t.truncate(at);
                Some(start)
            });
            if let Some(start) = start {
                c.timed_nanos.fetch_add(end.saturating_sub(start).max(0) as u64, Ordering::Relaxed);
                c.timed_calls.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn exit_value(&self, jni: &Jni<'_>, id: i32, value: Option<&Local<'_>>) {
        let c = self.counters(id);
        c.exits.fetch_add(1, Ordering::Relaxed);
        let Some(value) = value else { return };
        let text = jni.value_text(value);
        c.last.write().unwrap_or_else(|e| e.into_inner()).value = Some(text);
    }

    /// A method exits by an exception. The exit probe on the exceptional path is also how faults
    /// are captured without JVMTI exception events: fault-capture probes (negative ids) are
    /// counted by the fault log only, not as a patch's reports.
    pub fn thrown(&self, faults: &FaultLog, jvmti: Jvmti, jni: &Jni<'_>, id: i32, thrown: Option<&Local<'_>>) {
        if id >= 0 {
            self.counters(id).throws.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(thrown) = thrown {
            faults.record_from_probe(jvmti, jni, id, thrown);
        }
    }

    pub fn line(&self, id: i32, line: i32) {
        let c = self.counters(id);
        c.lines.fetch_add(1, Ordering::Relaxed);
        c.last_line.store(line as i64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_class_has_exactly_the_contract_methods_as_public_static_natives() {
        let bytes = class_bytes().unwrap();
        let cf = ClassFile::parse(&bytes).unwrap();
        assert_eq!(cf.name().unwrap(), "repair/rt/Hooks");
        assert_eq!(cf.super_name().unwrap().as_deref(), Some("java/lang/Object"));
        let methods: Vec<(String, String, u16)> = cf
            .methods
            .iter()
            .map(|m| (cf.member_name(m).unwrap().into_owned(), cf.member_descriptor(m).unwrap().into_owned(), m.access))
            .collect();
        assert_eq!(methods.len(), contract::METHODS.len());
        for ((n, d, access), (cn, cd)) in methods.iter().zip(contract::METHODS) {
            assert_eq!((n.as_str(), d.as_str()), (*cn, *cd));
            assert_eq!(*access, ACC_PUBLIC | ACC_STATIC | ACC_NATIVE);
            assert!(cf.methods.iter().all(|m| m.attributes.is_empty()), "native methods carry no Code");
        }
    }

    #[test]
    fn reports_are_counted_per_id() {
        let r = Reports::default();
        r.counters(7).fallbacks.fetch_add(2, Ordering::Relaxed);
        r.counters(3).enters.fetch_add(1, Ordering::Relaxed);
        let all = r.all();
        assert_eq!(all.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![3, 7]);
        assert_eq!(all[1].1.fallbacks.load(Ordering::Relaxed), 2);
    }
}
