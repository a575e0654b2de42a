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
/// Method entry with the arguments unboxed, for a method whose parameters fit [`packed`]:
/// `(probeId, shape, p0, p1, p2, p3, r0, r1, r2, r3)`. The primitive parameters, in order, go to
/// `p0..` as `long`s, the references (and `this` last, when captured) to `r0..`; the slots left
/// over are `0` and `null`. No array and no box is made on the application's thread.
pub const ENTER_PACKED: (&str, &str) =
    ("enterPacked", "(IIJJJJLjava/lang/Object;Ljava/lang/Object;Ljava/lang/Object;Ljava/lang/Object;)V");
/// Method entry with a `System.nanoTime()` timestamp: `(probeId, nanos)`.
pub const ENTER_AT: (&str, &str) = ("enterAt", "(IJ)V");
/// Normal exit: `(probeId)`.
pub const EXIT: (&str, &str) = ("exit", "(I)V");
/// Normal exit with the return value boxed (`null` for void): `(probeId, value)`.
pub const EXIT_VALUE: (&str, &str) = ("exitValue", "(ILjava/lang/Object;)V");
/// Normal exit with a primitive return value unboxed, as [`packed`] carries one:
/// `(value, probeId, typeCode)`.
pub const EXIT_PRIMITIVE: (&str, &str) = ("exitPrimitive", "(JII)V");
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
    ENTER_PACKED,
    ENTER_AT,
    EXIT,
    EXIT_VALUE,
    EXIT_PRIMITIVE,
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

/// How [`ENTER_PACKED`] and [`EXIT_PRIMITIVE`] carry values: each primitive widened to a `long`
/// (`int`-like ones sign-extended, a `float` as its raw bits in the low 32, a `double` as its raw
/// bits), described by a type code; a call's parameters by a `shape`.
pub mod packed {
    use crate::descriptor::FieldType;

    /// Most primitive parameters, and most references (`this` included), an entry carries.
    pub const PRIMITIVES: usize = 4;
    pub const REFERENCES: usize = 4;
    /// Most parameters a shape describes.
    pub const PARAMETERS: usize = 6;
    /// `this` is the last reference.
    const THIS: i32 = 1 << 30;

    /// The type of a value carried.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Code {
        Boolean = 1,
        Byte = 2,
        Char = 3,
        Short = 4,
        Int = 5,
        Long = 6,
        Float = 7,
        Double = 8,
        Reference = 9,
    }

    impl Code {
        pub fn of(t: &FieldType) -> Option<Code> {
            Some(match t {
                FieldType::Boolean => Code::Boolean,
                FieldType::Byte => Code::Byte,
                FieldType::Char => Code::Char,
                FieldType::Short => Code::Short,
                FieldType::Int => Code::Int,
                FieldType::Long => Code::Long,
                FieldType::Float => Code::Float,
                FieldType::Double => Code::Double,
                FieldType::Object(_) | FieldType::Array(_) => Code::Reference,
                FieldType::Void => return None,
            })
        }

        pub fn from_u8(n: u8) -> Option<Code> {
            use Code::*;
            [Boolean, Byte, Char, Short, Int, Long, Float, Double, Reference].into_iter().find(|c| *c as u8 == n)
        }
    }

    /// The shape of a call with these parameters (and `this`, when captured), or `None` when they
    /// do not fit: more than [`PARAMETERS`], [`PRIMITIVES`] or [`REFERENCES`].
    pub fn shape(params: &[FieldType], this: bool) -> Option<i32> {
        let primitives = params.iter().filter(|t| !t.is_reference()).count();
        let references = params.len() - primitives + usize::from(this);
        if params.len() > PARAMETERS || primitives > PRIMITIVES || references > REFERENCES {
            return None;
        }
        let mut shape = params.len() as i32 | if this { THIS } else { 0 };
        for (i, t) in params.iter().enumerate() {
            shape |= (Code::of(t)? as i32) << (4 + 4 * i);
        }
        Some(shape)
    }

    /// How many parameters a shape describes; `None` for more than a shape has.
    pub fn parameters(shape: i32) -> Option<usize> {
        Some((shape & 0xf) as usize).filter(|n| *n <= PARAMETERS)
    }

    /// The type of parameter `i` of a shape.
    pub fn code(shape: i32, i: usize) -> Option<Code> {
        Code::from_u8(((shape >> (4 + 4 * i)) & 0xf) as u8)
    }

    /// Whether `this` is carried, as the last reference.
    pub fn has_this(shape: i32) -> bool {
        shape & THIS != 0
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::descriptor::MethodDescriptor;

        /// The parameters' types a shape describes, and whether `this` is carried.
        fn decode(shape: i32) -> Option<(Vec<Code>, bool)> {
            let codes = (0..parameters(shape)?).map(|i| code(shape, i)).collect::<Option<Vec<_>>>()?;
            Some((codes, has_this(shape)))
        }

        #[test]
        fn shapes_round_trip_and_what_does_not_fit_has_none() {
            let d = MethodDescriptor::parse("(IJLjava/lang/String;[IDZ)V").unwrap();
            let s = shape(&d.params, true).unwrap();
            let (codes, this) = decode(s).unwrap();
            assert_eq!(codes, [Code::Int, Code::Long, Code::Reference, Code::Reference, Code::Double, Code::Boolean]);
            assert!(this);
            assert_eq!(decode(shape(&[], false).unwrap()), Some((vec![], false)));
            let five_ints = MethodDescriptor::parse("(IIIII)V").unwrap();
            assert_eq!(shape(&five_ints.params, false), None, "five primitives");
            let seven = MethodDescriptor::parse("(IIZLjava/lang/Object;[IJD)V").unwrap();
            assert_eq!(shape(&seven.params, false), None, "seven parameters");
            let refs =
                MethodDescriptor::parse("(Ljava/lang/Object;Ljava/lang/Object;Ljava/lang/Object;Ljava/lang/Object;)V")
                    .unwrap();
            assert!(shape(&refs.params, false).is_some(), "four references");
            assert_eq!(shape(&refs.params, true), None, "four and this");
            assert_eq!(decode(7), None, "more parameters than a shape has");
        }
    }
}
