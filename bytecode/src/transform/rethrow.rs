//! `rethrow`, error transformation (Ares, ASE 2016): the method is guarded as
//! [`super::guard`] guards it, but its handler throws a new exception of a type that an
//! application frame above already handles, made from the caught one, so that the application's
//! own error path runs instead of a fallback value standing in for a result.
//!
//! The pure parts of choosing that type are here too: the catch types of the handlers around a
//! frame's call ([`handlers_at`]), the constructor to make the new exception with
//! ([`choose_constructor`]), and the exceptions a method declares ([`declared_exceptions`]).

use super::guard::{guard_method, raw_code, Outcome};
use super::{Fallback, GuardSpec, MethodTarget};
use crate::bytes::Reader;
use crate::classfile::ClassFile;
use crate::code::opcodes::*;
use crate::code::Insn;
use crate::constant_pool::ConstantPool;
use crate::error::{Error, Result};

/// Which constructor of the thrown type the handler calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrowableConstructor {
    /// `(String message, Throwable cause)`: the caught exception's message, and itself as cause.
    MessageCause,
    /// `(String message)`: the caught exception's message.
    Message,
    /// `()`.
    NoArgs,
}

impl ThrowableConstructor {
    /// Most preferred first: the more of the caught exception the new one keeps, the better.
    pub const PREFERENCE: [ThrowableConstructor; 3] =
        [ThrowableConstructor::MessageCause, ThrowableConstructor::Message, ThrowableConstructor::NoArgs];

    pub fn descriptor(self) -> &'static str {
        match self {
            ThrowableConstructor::MessageCause => "(Ljava/lang/String;Ljava/lang/Throwable;)V",
            ThrowableConstructor::Message => "(Ljava/lang/String;)V",
            ThrowableConstructor::NoArgs => "()V",
        }
    }

    pub fn from_descriptor(descriptor: &str) -> Option<ThrowableConstructor> {
        Self::PREFERENCE.into_iter().find(|c| c.descriptor() == descriptor)
    }
}

/// The exception a rethrow handler throws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrowAs {
    /// Internal name (`java/io/IOException`).
    pub class: String,
    pub constructor: ThrowableConstructor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RethrowSpec {
    pub method: MethodTarget,
    /// Internal names of the exception classes caught.
    pub catch: Vec<String>,
    pub throw: ThrowAs,
    /// Reported to `Hooks.fallback` each time an exception is transformed; `None`: no report.
    pub report_id: Option<i32>,
}

/// Guards `spec.method` with a handler that throws `spec.throw` made from what it caught.
pub fn rethrow(class: &[u8], spec: &RethrowSpec) -> Result<Vec<u8>> {
    let mut cf = ClassFile::parse(class)?;
    let index = cf.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    let guard = GuardSpec {
        method: spec.method.clone(),
        catch: spec.catch.clone(),
        fallback: Fallback::Default,
        call_site: None,
        report_id: spec.report_id,
    };
    guard_method(&mut cf, index, &guard, Outcome::Throw(&spec.throw))?;
    cf.to_bytes()
}

/// Instructions that, with the caught exception on the stack, throw a new `t` made from it; and
/// the operand stack they need. Straight-line, so the handler needs no frame but its first.
pub(crate) fn throw_insns(t: &ThrowAs, pool: &mut ConstantPool) -> Result<(Vec<Insn>, usize)> {
    let new = Insn::Cp { op: NEW, index: pool.add_class(&t.class)? };
    let init =
        Insn::Cp { op: INVOKESPECIAL, index: pool.add_method_ref(&t.class, "<init>", t.constructor.descriptor())? };
    let message = Insn::Cp {
        op: INVOKEVIRTUAL,
        index: pool.add_method_ref("java/lang/Throwable", "getMessage", "()Ljava/lang/String;")?,
    };
    Ok(match t.constructor {
        // [e] -> [new, new, e] -> [new, new, e, e] -> [new, new, e, msg] -> [new, new, msg, e]
        ThrowableConstructor::MessageCause => (
            vec![new, Insn::Op(DUP_X1), Insn::Op(SWAP), Insn::Op(DUP), message, Insn::Op(SWAP), init, Insn::Op(ATHROW)],
            4,
        ),
        // [e] -> [new, new, e] -> [new, new, msg]
        ThrowableConstructor::Message => {
            (vec![new, Insn::Op(DUP_X1), Insn::Op(SWAP), message, init, Insn::Op(ATHROW)], 3)
        }
        ThrowableConstructor::NoArgs => (vec![Insn::Op(POP), new, Insn::Op(DUP), init, Insn::Op(ATHROW)], 2),
    })
}

/// The constructor a rethrow can call, from the `(descriptor, access flags)` of the constructors
/// the thrown class declares: the most preferred that code in the patched class may call (public,
/// or not private when both classes are in one package). `None`: none fits.
pub fn choose_constructor(constructors: &[(String, u16)], same_package: bool) -> Option<ThrowableConstructor> {
    const ACC_PUBLIC: u16 = 0x0001;
    const ACC_PRIVATE: u16 = 0x0002;
    let callable = |access: u16| access & ACC_PUBLIC != 0 || (same_package && access & ACC_PRIVATE == 0);
    ThrowableConstructor::PREFERENCE
        .into_iter()
        .find(|c| constructors.iter().any(|(d, access)| d == c.descriptor() && callable(*access)))
}

/// The exception classes (dotted) a method declares in its `throws` clause.
pub fn declared_exceptions(class: &[u8], method: &MethodTarget) -> Result<Vec<String>> {
    let cf = ClassFile::parse(class)?;
    let m = &cf.methods[cf.find_method(&method.name, method.descriptor.as_deref())?];
    let Some(a) = cf.find_attribute(&m.attributes, "Exceptions") else { return Ok(Vec::new()) };
    let mut r = Reader::new(&a.data, "Exceptions");
    (0..r.u16()?).map(|_| Ok(cf.pool.class_name(r.u16()?)?.replace('/', "."))).collect()
}

/// What handles an exception thrown out of one frame's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHandlers {
    /// Catch types (dotted) of the handlers covering the call, in exception-table order (the
    /// order the JVM tries them), each once; catch-any handlers (`finally`) are left out.
    pub catch: Vec<String>,
    /// The class's `SourceFile`, for messages.
    pub source_file: Option<String>,
}

/// The handlers of `method` around the call a frame of it is in: every invoke instruction on
/// source `line` when the method has a line table and the line is known (a stack trace gives
/// lines, not offsets), otherwise the instruction at `bci`.
pub fn handlers_at(class: &[u8], method: &MethodTarget, line: Option<u32>, bci: Option<u32>) -> Result<CallHandlers> {
    let cf = ClassFile::parse(class)?;
    let context = || format!("method {}.{method}", cf.name().unwrap_or_default().replace('/', "."));
    let m = &cf.methods[cf.find_method(&method.name, method.descriptor.as_deref())?];
    let code = cf.find_attribute(&m.attributes, "Code").ok_or_else(|| Error::refused(context(), "has no code"))?;
    let raw = raw_code(&code.data).map_err(|e| e.within(context()))?;
    let mut lines: Vec<(u32, u32)> = Vec::new();
    for a in raw.attributes.iter().filter(|a| cf.pool.is_utf8(a.name, "LineNumberTable")) {
        let mut r = Reader::new(&a.data, "LineNumberTable");
        for _ in 0..r.u16()? {
            lines.push((r.u16()?.into(), r.u16()?.into()));
        }
    }
    let line_of = |pc: u32| lines.iter().filter(|(start, _)| *start <= pc).max_by_key(|(start, _)| *start).map(|l| l.1);
    let by_line = line.filter(|_| !lines.is_empty());
    let mut calls = Vec::new();
    crate::code::scan(raw.code, |pc, op| {
        let here = match by_line {
            Some(l) => (INVOKEVIRTUAL..=INVOKEDYNAMIC).contains(&op) && line_of(pc) == Some(l),
            None => bci == Some(pc),
        };
        if here {
            calls.push(pc);
        }
        true
    })
    .map_err(|e| e.within(context()))?;
    let mut catch: Vec<String> = Vec::new();
    for e in raw.table.chunks_exact(8) {
        let field = |i: usize| u16::from_be_bytes([e[i], e[i + 1]]);
        let (start, end, catch_type) = (u32::from(field(0)), u32::from(field(2)), field(6));
        if catch_type == 0 || !calls.iter().any(|pc| (start..end).contains(pc)) {
            continue;
        }
        let name = cf.pool.class_name(catch_type)?.replace('/', ".");
        if !catch.contains(&name) {
            catch.push(name);
        }
    }
    let source_file = match cf.find_attribute(&cf.attributes, "SourceFile") {
        Some(a) if a.data.len() == 2 => Some(cf.pool.utf8(u16::from_be_bytes([a.data[0], a.data[1]]))?.into_owned()),
        _ => None,
    };
    Ok(CallHandlers { catch, source_file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constructor_keeps_as_much_of_the_caught_exception_as_the_class_allows() {
        let c = |list: &[(&str, u16)], same| {
            choose_constructor(&list.iter().map(|(d, a)| (d.to_string(), *a)).collect::<Vec<_>>(), same)
        };
        let all = [("()V", 1), ("(Ljava/lang/String;)V", 1), ("(Ljava/lang/String;Ljava/lang/Throwable;)V", 1)];
        assert_eq!(c(&all, false), Some(ThrowableConstructor::MessageCause));
        assert_eq!(c(&all[..2], false), Some(ThrowableConstructor::Message));
        assert_eq!(c(&all[..1], false), Some(ThrowableConstructor::NoArgs));
        // Only (Throwable): none of the three.
        assert_eq!(c(&[("(Ljava/lang/Throwable;)V", 1)], false), None);
        // Package-private: only from the same package; private never.
        let hidden = [("(Ljava/lang/String;Ljava/lang/Throwable;)V", 0), ("()V", 1)];
        assert_eq!(c(&hidden, false), Some(ThrowableConstructor::NoArgs));
        assert_eq!(c(&hidden, true), Some(ThrowableConstructor::MessageCause));
        assert_eq!(c(&[("()V", 2)], true), None);
        for k in ThrowableConstructor::PREFERENCE {
            assert_eq!(ThrowableConstructor::from_descriptor(k.descriptor()), Some(k));
        }
        assert_eq!(ThrowableConstructor::from_descriptor("(I)V"), None);
    }
}
