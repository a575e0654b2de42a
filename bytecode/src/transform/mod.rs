//! Transforms: each a pure function `class bytes + spec → class bytes | error`.
//!
//! Every transform edits only the methods it targets; the rest of the class keeps its bytes.
//! None may add or remove members or change signatures, modifiers or the hierarchy, since
//! `RedefineClasses` refuses that; [`check_redefinable`] enforces it on the result.

pub mod breaker;
pub mod call_site;
pub mod guard;
pub mod hooks;
pub mod oblivious;
pub mod probe;
pub mod rethrow;
pub mod snapshot;
pub mod swap;
pub mod trace;

use crate::descriptor::FieldType;

pub use crate::redefinition::check_redefinable;

/// A method's `LineNumberTable`s as `(start pc, line)` in the order stored, read without decoding
/// its code; `None` when it has no code or no table.
pub(crate) fn line_table(cf: &crate::ClassFile, m: &crate::Member) -> crate::error::Result<Option<Vec<(u16, u16)>>> {
    let Some(code) = cf.find_attribute(&m.attributes, "Code") else { return Ok(None) };
    let mut lines = None;
    for a in guard::raw_code(&code.data)?.attributes.iter().filter(|a| cf.pool.is_utf8(a.name, "LineNumberTable")) {
        let mut r = crate::bytes::Reader::new(&a.data, "LineNumberTable");
        let l: &mut Vec<(u16, u16)> = lines.get_or_insert_with(Vec::new);
        for _ in 0..r.u16()? {
            l.push((r.u16()?, r.u16()?));
        }
    }
    Ok(lines)
}

/// The method a transform targets: by name, or name and descriptor when overloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodTarget {
    pub name: String,
    pub descriptor: Option<String>,
}

impl MethodTarget {
    /// Parses `name` or `name(descriptor)ret`, e.g. `price(Ljava/lang/String;)J`.
    pub fn parse(s: &str) -> MethodTarget {
        match s.find('(') {
            Some(i) => MethodTarget { name: s[..i].to_string(), descriptor: Some(s[i..].to_string()) },
            None => MethodTarget { name: s.to_string(), descriptor: None },
        }
    }
}

impl std::fmt::Display for MethodTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.name, self.descriptor.as_deref().unwrap_or(""))
    }
}

/// A constant fallback value, converted to the method's return type when applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
}

/// What a guard handler returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// The return type's default: 0, 0L, 0f, 0d, false, `null`, or nothing for `void`.
    Default,
    Null,
    Constant(Constant),
    /// The argument at this parameter position (0-based, not counting `this`).
    Argument(u16),
    /// A call to a static method with the guarded method's parameters (and `this` first for an
    /// instance method when `pass_this`), returning the same type.
    StaticMethod {
        class: String,
        name: String,
    },
}

/// One call site inside a method: the `occurrence`-th (1-based) call to `name` (optionally
/// restricted to an owner class and descriptor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    pub owner: Option<String>,
    pub name: String,
    pub descriptor: Option<String>,
    pub occurrence: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GuardSpec {
    pub method: MethodTarget,
    /// Internal names of the exception classes caught (`java/lang/NullPointerException`).
    pub catch: Vec<String>,
    pub fallback: Fallback,
    /// Guard one call site instead of the whole method.
    pub call_site: Option<CallSite>,
    /// Reported to `Hooks.fallback` each time the fallback is taken; `None`: no report.
    pub report_id: Option<i32>,
}

/// Where a probe fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbePoint {
    Entry,
    /// Normal return.
    Exit,
    /// Exit by an exception.
    Throw,
    /// Before the first instruction of a source line.
    Line(u16),
}

/// A method gated by the runtime hooks (a circuit breaker, a recursion guard); the gate's state
/// and thresholds live in the hooks, keyed by `report_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSpec {
    pub method: MethodTarget,
    /// What the method returns when the gate refuses to run its body.
    pub fallback: Fallback,
    pub report_id: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub method: MethodTarget,
    pub points: Vec<ProbePoint>,
    pub probe_id: i32,
    /// Pass the arguments (boxed into an `Object[]`) at entry.
    pub capture_args: bool,
    /// With `capture_args`, `this` as the array's last element (instance methods other than
    /// constructors, whose `this` is not initialized at entry).
    pub capture_this: bool,
    /// Pass the return value (boxed) at exit.
    pub capture_return: bool,
    /// Pass a `System.nanoTime()` timestamp at entry and exit.
    pub timestamp: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SwapSpec {
    pub method: MethodTarget,
    /// The class file of a class compiled from the fixed source: the method of the same name and
    /// descriptor is taken from it.
    pub patch_class: Vec<u8>,
}

/// The default value of a return type, for messages.
pub fn default_value_text(t: &FieldType) -> &'static str {
    match t {
        FieldType::Void => "(void)",
        FieldType::Boolean => "false",
        FieldType::Object(_) | FieldType::Array(_) => "null",
        FieldType::Float => "0.0f",
        FieldType::Double => "0.0",
        FieldType::Long => "0L",
        _ => "0",
    }
}
