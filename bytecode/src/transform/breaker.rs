//! Gated methods: the body runs only when a runtime hook says so at entry, else the method returns
//! the fallback at once. Two gates share this shape:
//!
//! - `breaker`, a circuit breaker: the hooks keep its state; the method asks at entry whether to
//!   run (`Hooks.breakerEnter`) and tells how each run ended (`Hooks.breakerExit` before every
//!   return, `Hooks.breakerThrown` with the exception on the way out of one, which is rethrown).
//! - `recursion_guard`: the hooks keep each thread's depth of calls of the method
//!   (`Hooks.recursionEnter` refuses past the guard's depth, `Hooks.recursionExit` on every way
//!   out, normal or not).
//!
//! ```text
//!   iconst id; invokestatic enter(I)Z; ifne BODY
//!   <fallback>; xreturn
//! BODY:
//!   ...original code, each xreturn preceded by: iconst id; invokestatic exit(I)V
//! HANDLER (any exception in the body), rethrowing it:
//!   dup; iconst id; swap; invokestatic thrown(ILjava/lang/Throwable;)V; athrow   (breaker)
//!   iconst id; invokestatic recursionExit(I)V; athrow                           (recursion guard)
//! ```

use std::sync::Arc;

use super::guard::{check_fallback, edit_method, fallback_return, label_initialized_ranges, needs_frames, push_int};
use super::probe::hook;
use super::{hooks, BreakerSpec, Fallback};
use crate::classfile::{ClassFile, ACC_ABSTRACT, ACC_NATIVE};
use crate::code::opcodes::*;
use crate::code::{vtype_of, Frame, Handler, Insn, VType, ValueKind};
use crate::descriptor::MethodDescriptor;
use crate::error::{Error, Result};

/// The hooks a gated method calls, and what the gate is called in refusals.
struct Gate {
    what: &'static str,
    /// `(I)Z`: whether the body runs.
    enter: (&'static str, &'static str),
    /// `(I)V`, before every return of the body.
    exit: (&'static str, &'static str),
    /// On the way out of an exception, which is rethrown: `(ILjava/lang/Throwable;)V` is passed
    /// the exception, `(I)V` only the id.
    thrown: (&'static str, &'static str),
}

const BREAKER: Gate =
    Gate { what: "a breaker", enter: hooks::BREAKER_ENTER, exit: hooks::BREAKER_EXIT, thrown: hooks::BREAKER_THROWN };

const RECURSION: Gate = Gate {
    what: "a recursion guard",
    enter: hooks::RECURSION_ENTER,
    exit: hooks::RECURSION_EXIT,
    thrown: hooks::RECURSION_EXIT,
};

/// A circuit breaker around `spec.method`.
pub fn breaker(class: &[u8], spec: &BreakerSpec) -> Result<Vec<u8>> {
    gated(class, spec, &BREAKER)
}

/// A recursion guard around `spec.method`: calls nested deeper than the depth the runtime hooks
/// keep for `spec.report_id` return the fallback without running the body.
pub fn recursion_guard(class: &[u8], spec: &BreakerSpec) -> Result<Vec<u8>> {
    gated(class, spec, &RECURSION)
}

fn gated(class: &[u8], spec: &BreakerSpec, gate: &Gate) -> Result<Vec<u8>> {
    let mut cf = ClassFile::parse(class)?;
    let index = cf.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    let m = &cf.methods[index];
    let name = cf.member_name(m)?.into_owned();
    let what = format!("method {name}{}", cf.member_descriptor(m)?);
    if name == "<init>" || name == "<clinit>" {
        return Err(Error::refused(
            what,
            format!("{} cannot skip an initializer: the object or class would be left unbuilt", gate.what),
        ));
    }
    if m.access & (ACC_ABSTRACT | ACC_NATIVE) != 0 {
        return Err(Error::refused(what, format!("has no bytecode to put {} around (abstract or native)", gate.what)));
    }
    edit_method(&mut cf, index, |code, pool, info, major| {
        let desc = MethodDescriptor::parse(info.descriptor)?;
        check_fallback(&spec.fallback, &desc)?;
        let id = spec.report_id;

        // Where each argument is at entry: the fallback reads them in place.
        let mut slot = if info.is_static() { 0 } else { 1 };
        let mut params = Vec::with_capacity(desc.params.len());
        for t in &desc.params {
            params.push((ValueKind::of(t).expect("parameters are never void"), slot, slot, t.clone()));
            slot += t.size() as u16;
        }
        let read: Vec<_> = match &spec.fallback {
            Fallback::Argument(i) => vec![params[*i as usize].clone()],
            Fallback::StaticMethod { .. } => params.clone(),
            _ => Vec::new(),
        };

        let mut i = 0;
        while i < code.insns.len() {
            if matches!(code.insns[i], Insn::Op(op) if (IRETURN..=RETURN).contains(&op)) {
                let call = [push_int(id, pool)?, hook(pool, gate.exit)?];
                code.insns.splice(i..i, call);
                i += 3;
            } else {
                i += 1;
            }
        }

        let labelled = label_initialized_ranges(code, pool, info)?;
        let handler = code.new_label();
        code.insns.push(Insn::Label(handler));
        if gate.thrown.1.starts_with("(ILjava/lang/Throwable;)") {
            code.insns.extend([
                Insn::Op(DUP),
                push_int(id, pool)?,
                Insn::Op(SWAP),
                hook(pool, gate.thrown)?,
                Insn::Op(ATHROW),
            ]);
        } else {
            code.insns.extend([push_int(id, pool)?, hook(pool, gate.thrown)?, Insn::Op(ATHROW)]);
        }
        for (start, end) in labelled {
            code.handlers.push(Handler { start, end, handler, catch_type: 0 });
        }

        // The body starts at the first original instruction; when a frame already sits there (a
        // loop back to offset 0), jump to its label rather than declare a second frame.
        let framed = |l| code.frames().is_some_and(|f| f.iter().any(|(fl, _)| *fl == l));
        let existing = code.insns.iter().take_while(|i| matches!(i, Insn::Label(_))).find_map(|i| match i {
            Insn::Label(l) if framed(*l) => Some(*l),
            _ => None,
        });
        let body = existing.unwrap_or_else(|| code.new_label());
        let (fallback, stack) = fallback_return(&spec.fallback, &desc, info, &read, pool)?;
        let mut prologue = vec![push_int(id, pool)?, hook(pool, gate.enter)?, Insn::Branch { op: IFNE, target: body }];
        prologue.extend(fallback);
        if existing.is_none() {
            prologue.push(Insn::Label(body));
        }
        code.insns.splice(0..0, prologue);

        if needs_frames(code, major) {
            let mut locals = Vec::with_capacity(desc.params.len() + 1);
            if !info.is_static() {
                locals.push(VType::Object(Arc::from(info.class)));
            }
            locals.extend(desc.params.iter().map(vtype_of));
            let frames = code.frames_or_insert(pool)?;
            if existing.is_none() {
                frames.push((body, Frame { locals, stack: Vec::new() }));
            }
            frames.push((
                handler,
                Frame { locals: Vec::new(), stack: vec![VType::Object(Arc::from("java/lang/Throwable"))] },
            ));
        }
        code.max_stack = code.max_stack.max(stack as u16).saturating_add(3);
        Ok(())
    })?;
    cf.to_bytes()
}
