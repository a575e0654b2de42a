//! The runtime hooks contract: the class the agent defines in the bootstrap loader and the
//! static methods injected code calls. The agent binds each to Rust with `RegisterNatives`.
//!
//! This module is the single source of truth: the agent generates the class from [`METHODS`].

/// Internal name of the hooks class.
pub const CLASS: &str = "repair/rt/Hooks";

/// A guard handler took its fallback: `(guardId, exception)`.
pub const FALLBACK: (&str, &str) = ("fallback", "(ILjava/lang/Throwable;)V");
/// Method entry: `(probeId)`.
pub const ENTER: (&str, &str) = ("enter", "(I)V");
/// Method entry with arguments boxed: `(probeId, args)`.
pub const ENTER_ARGS: (&str, &str) = ("enterArgs", "(I[Ljava/lang/Object;)V");
/// Method entry with a `System.nanoTime()` timestamp: `(probeId, nanos)`.
pub const ENTER_AT: (&str, &str) = ("enterAt", "(IJ)V");
/// Normal exit: `(probeId)`.
pub const EXIT: (&str, &str) = ("exit", "(I)V");
/// Normal exit with the return value boxed (`null` for void): `(probeId, value)`.
pub const EXIT_VALUE: (&str, &str) = ("exitValue", "(ILjava/lang/Object;)V");
/// Normal exit with a timestamp: `(probeId, nanos)`.
pub const EXIT_AT: (&str, &str) = ("exitAt", "(IJ)V");
/// Exceptional exit: `(probeId, exception)`; the exception is rethrown after the call.
pub const THROWN: (&str, &str) = ("thrown", "(ILjava/lang/Throwable;)V");
/// A source line is about to run: `(probeId, line)`.
pub const LINE: (&str, &str) = ("line", "(II)V");
/// A snapshotted source line is about to run, with every initialised local boxed (in the order
/// `transform::snapshot` reports): `(snapshotId, locals)`.
pub const SNAPSHOT: (&str, &str) = ("snapshot", "(I[Ljava/lang/Object;)V");

/// A breaker asks whether the body may run: `(breakerId) -> run?` (false: return the fallback).
pub const BREAKER_ENTER: (&str, &str) = ("breakerEnter", "(I)Z");
/// The body of a breaker's method returned normally: `(breakerId)`.
pub const BREAKER_EXIT: (&str, &str) = ("breakerExit", "(I)V");
/// The body of a breaker's method exits by an exception, rethrown after: `(breakerId, exception)`.
pub const BREAKER_THROWN: (&str, &str) = ("breakerThrown", "(ILjava/lang/Throwable;)V");

/// A recursion guard asks whether the body may run at this thread's depth of calls of its method:
/// `(guardId) -> run?` (false: return the fallback, the depth unchanged).
pub const RECURSION_ENTER: (&str, &str) = ("recursionEnter", "(I)Z");
/// The body of a recursion guard's method returned or exits by an exception: `(guardId)`.
pub const RECURSION_EXIT: (&str, &str) = ("recursionExit", "(I)V");

/// A traced method is about to make call `site` (see [`super::trace`]): `(traceId, site)`.
pub const CALL_ENTER: (&str, &str) = ("callEnter", "(II)V");
/// Call `site` of a traced method returned normally: `(traceId, site)`. A call that throws has
/// no `callExit`: the consumer unwinds open calls when the traced method itself exits.
pub const CALL_EXIT: (&str, &str) = ("callExit", "(II)V");

/// Failure-oblivious array access (see [`super::oblivious`]): static methods with real bytecode in
/// the hooks class, not natives (an access in bounds must not cost a JNI transition). Per element
/// type a load `(array, index, reportId) -> value` and a store `(array, index, value, reportId)`;
/// out of bounds the load returns the default and the store does nothing, each calling
/// [`FALLBACK`] with `null`. Int-like values travel as `int`, as the array instructions push them.
pub const OBLIVIOUS: &[(&str, &str)] = &[
    ("obliviousIaload", "([III)I"),
    ("obliviousIastore", "([IIII)V"),
    ("obliviousLaload", "([JII)J"),
    ("obliviousLastore", "([JIJI)V"),
    ("obliviousFaload", "([FII)F"),
    ("obliviousFastore", "([FIFI)V"),
    ("obliviousDaload", "([DII)D"),
    ("obliviousDastore", "([DIDI)V"),
    ("obliviousAaload", "([Ljava/lang/Object;II)Ljava/lang/Object;"),
    ("obliviousAastore", "([Ljava/lang/Object;ILjava/lang/Object;I)V"),
    ("obliviousBaload", "([BII)I"),
    ("obliviousBastore", "([BIII)V"),
    ("obliviousCaload", "([CII)I"),
    ("obliviousCastore", "([CIII)V"),
    ("obliviousSaload", "([SII)I"),
    ("obliviousSastore", "([SIII)V"),
    ("obliviousZaload", "([ZII)I"),
    ("obliviousZastore", "([ZIII)V"),
];

/// Every native hook method as `(name, descriptor)`.
pub const METHODS: &[(&str, &str)] = &[
    FALLBACK,
    ENTER,
    ENTER_ARGS,
    ENTER_AT,
    EXIT,
    EXIT_VALUE,
    EXIT_AT,
    THROWN,
    LINE,
    BREAKER_ENTER,
    BREAKER_EXIT,
    BREAKER_THROWN,
    SNAPSHOT,
    CALL_ENTER,
    CALL_EXIT,
    RECURSION_ENTER,
    RECURSION_EXIT,
];
