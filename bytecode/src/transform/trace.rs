//! `trace`: every call a method makes, wrapped in `Hooks.callEnter`/`Hooks.callExit` with the
//! trace id and the call's site number, so the runtime can build each run of the method as a
//! tree of the calls it made and time them.
//!
//! ```text
//!   <operands of the call>
//!   iconst traceId; sipush site; invokestatic callEnter(II)V
//!   invoke...
//!   iconst traceId; sipush site; invokestatic callExit(II)V
//! ```
//!
//! The hook calls leave the stack and locals as they found them and add no branch targets, so
//! the existing stack map frames stay valid; only offsets move, which the encoder relocates.

use std::collections::HashMap;

use super::guard::{edit_method, push_int};
use super::probe::hook;
use super::{hooks, MethodTarget};
use crate::classfile::ClassFile;
use crate::code::opcodes::*;
use crate::code::{CodeAttribute, Insn};
use crate::error::{Error, Result};

/// One call site of the traced method, in code order; `site` is its index here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedCall {
    /// Internal name of the class named by the call, or "" for invokedynamic.
    pub owner: String,
    pub name: String,
    pub descriptor: String,
    pub line: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSpec {
    pub method: MethodTarget,
    pub trace_id: i32,
}

/// Site numbers fit `sipush`. A valid method cannot reach this (an invoke takes at least 3 of its
/// 65535 code bytes); the wrapped code outgrows the code limit long before, and the encoder
/// refuses that.
const MAX_SITES: usize = i16::MAX as usize;

/// Wraps every invoke instruction of the method (invokevirtual, invokespecial including
/// constructors, invokestatic, invokeinterface, invokedynamic) in callEnter/callExit; returns the
/// new class bytes and the sites.
pub fn trace(class: &[u8], spec: &TraceSpec) -> Result<(Vec<u8>, Vec<TracedCall>)> {
    let mut cf = ClassFile::parse(class)?;
    let index = cf.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    let mut calls = Vec::new();
    edit_method(&mut cf, index, |code, pool, _, _| {
        let lines: HashMap<_, _> = code
            .attributes
            .iter()
            .flat_map(|(_, a)| match a {
                CodeAttribute::LineNumbers(l) => l.clone(),
                _ => Vec::new(),
            })
            .collect();
        let id = push_int(spec.trace_id, pool)?;
        let (enter, exit) = (hook(pool, hooks::CALL_ENTER)?, hook(pool, hooks::CALL_EXIT)?);
        let mut line = None;
        let mut insns = Vec::with_capacity(code.insns.len() * 2);
        for insn in std::mem::take(&mut code.insns) {
            let (owner, name, descriptor) = match &insn {
                Insn::Label(l) => {
                    // Code order is offset order, so the last entry passed is the line in effect.
                    line = lines.get(l).copied().or(line);
                    insns.push(insn);
                    continue;
                }
                Insn::Cp { op: INVOKEVIRTUAL | INVOKESPECIAL | INVOKESTATIC, index }
                | Insn::InvokeInterface { index, .. } => {
                    let r = pool.member_ref(*index)?;
                    (r.class.into_owned(), r.name.into_owned(), r.descriptor.into_owned())
                }
                Insn::InvokeDynamic { index } => {
                    let (_, name, descriptor) = pool.dynamic(*index)?;
                    (String::new(), name.into_owned(), descriptor.into_owned())
                }
                _ => {
                    insns.push(insn);
                    continue;
                }
            };
            if calls.len() == MAX_SITES {
                return Err(Error::refused("trace", format!("more than {MAX_SITES} calls to trace")));
            }
            let site = push_int(calls.len() as i32, pool)?;
            calls.push(TracedCall { owner, name, descriptor, line });
            // After any labels bound here, so a jump to the call runs callEnter; callExit before
            // the next labels, so a jump past the call does not run it.
            insns.extend([id.clone(), site.clone(), enter.clone(), insn, id.clone(), site, exit.clone()]);
        }
        code.insns = insns;
        if calls.is_empty() {
            return Err(Error::refused("trace", "the method makes no calls: there is nothing to trace"));
        }
        // The two ints a hook takes, on top of whatever the call had (recomputed exactly after).
        code.max_stack = code.max_stack.saturating_add(2);
        Ok(())
    })?;
    Ok((cf.to_bytes()?, calls))
}
