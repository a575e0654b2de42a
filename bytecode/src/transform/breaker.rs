//! `breaker`: a circuit breaker around a method. The runtime hooks keep the breaker's state; the
//! method asks them at entry whether to run (`Hooks.breakerEnter`), and tells them how each run
//! ended (`Hooks.breakerExit` before every return, `Hooks.breakerThrown` on the way out of an
//! exception, which is rethrown). While the breaker is open the body does not run: the method
//! returns the fallback at once.
//!
//! ```text
//!   iconst id; invokestatic breakerEnter(I)Z; ifne BODY
//!   <fallback>; xreturn
//! BODY:
//!   ...original code, each xreturn preceded by: iconst id; invokestatic breakerExit(I)V
//! HANDLER (any exception in the body):
//!   dup; iconst id; swap; invokestatic breakerThrown(ILjava/lang/Throwable;)V; athrow
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

pub fn breaker(class: &[u8], spec: &BreakerSpec) -> Result<Vec<u8>> {
    let mut cf = ClassFile::parse(class)?;
    let index = cf.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    let m = &cf.methods[index];
    let name = cf.member_name(m)?.into_owned();
    let what = format!("method {name}{}", cf.member_descriptor(m)?);
    if name == "<init>" || name == "<clinit>" {
        return Err(Error::refused(
            what,
            "a breaker cannot skip an initializer: the object or class would be left unbuilt",
        ));
    }
    if m.access & (ACC_ABSTRACT | ACC_NATIVE) != 0 {
        return Err(Error::refused(what, "has no bytecode to put a breaker around (abstract or native)"));
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
                let call = [push_int(id, pool)?, hook(pool, hooks::BREAKER_EXIT)?];
                code.insns.splice(i..i, call);
                i += 3;
            } else {
                i += 1;
            }
        }

        let labelled = label_initialized_ranges(code, pool, info)?;
        let handler = code.new_label();
        code.insns.push(Insn::Label(handler));
        code.insns.extend([
            Insn::Op(DUP),
            push_int(id, pool)?,
            Insn::Op(SWAP),
            hook(pool, hooks::BREAKER_THROWN)?,
            Insn::Op(ATHROW),
        ]);
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
        let mut prologue =
            vec![push_int(id, pool)?, hook(pool, hooks::BREAKER_ENTER)?, Insn::Branch { op: IFNE, target: body }];
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
