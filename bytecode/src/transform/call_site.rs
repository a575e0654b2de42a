//! `guard` of one call site: `try { r = call(args) } catch (E) { r = fallback }` around a single
//! invoke, with whatever the method had on its operand stack below the call kept. The stack at
//! the call is spilled to fresh locals (its types come from the type inference) so the handler,
//! which starts from an empty stack, can restore it.

use std::sync::Arc;

use super::guard::{edit_method, needs_frames, push_constant, push_int};
use super::{hooks, CallSite, Fallback, GuardSpec};
use crate::analysis::Analysis;
use crate::classfile::ClassFile;
use crate::code::opcodes::*;
use crate::code::{Frame, Handler, Insn, VType, ValueKind};
use crate::constant_pool::ConstantPool;
use crate::descriptor::{FieldType, MethodDescriptor};
use crate::error::{Error, Result};
use crate::hierarchy::Hierarchy;

/// Guards the call `spec.call_site` names inside `spec.method`.
pub fn guard_call_site(class: &[u8], spec: &GuardSpec, hierarchy: &dyn Hierarchy) -> Result<Vec<u8>> {
    let site = spec.call_site.as_ref().ok_or_else(|| Error::refused("guard", "no call site given"))?;
    let mut cf = ClassFile::parse(class)?;
    let index = cf.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    edit_method(&mut cf, index, |code, pool, info, major| {
        let at = find_call(&code.insns, pool, site)?;
        let (owner_desc, is_static) = call_shape(&code.insns[at], pool)?;
        let call = MethodDescriptor::parse(&owner_desc)?;
        let analysis = Analysis::run(code, pool, info, hierarchy)?;
        let state = analysis.states[at].clone().ok_or_else(|| Error::refused("guard", "the call is unreachable"))?;
        if state.locals.contains(&VType::UninitializedThis) {
            return Err(Error::refused(
                "guard",
                "the call runs before super(...)/this(...): the object is not built yet",
            ));
        }
        if state.stack.iter().any(|t| matches!(t, VType::Uninitialized(_) | VType::UninitializedThis | VType::Top)) {
            return Err(Error::refused(
                "guard",
                "the call's operands include an object under construction (new X(..call..))",
            ));
        }
        let n_args = call.params.len() + usize::from(!is_static);
        let below = state.stack.len() - n_args;

        // Spill every stack entry, top first, into fresh slots.
        let mut slot = code.max_locals as usize;
        let mut slots = vec![0u16; state.stack.len()];
        for (i, t) in state.stack.iter().enumerate() {
            slots[i] = u16::try_from(slot).map_err(|_| Error::limit("locals", "more than 65535 local slots"))?;
            slot += if t.is_wide() { 2 } else { 1 };
        }
        let kind = |t: &VType| match t {
            VType::Integer => ValueKind::Int,
            VType::Long => ValueKind::Long,
            VType::Float => ValueKind::Float,
            VType::Double => ValueKind::Double,
            _ => ValueKind::Reference,
        };
        let reload = |range: std::ops::Range<usize>| -> Vec<Insn> {
            range.map(|i| Insn::load(kind(&state.stack[i]), slots[i])).collect()
        };
        let mut prefix: Vec<Insn> =
            (0..state.stack.len()).rev().map(|i| Insn::store(kind(&state.stack[i]), slots[i])).collect();
        prefix.extend(reload(0..state.stack.len()));
        let (start, end, handler, join) = (code.new_label(), code.new_label(), code.new_label(), code.new_label());
        prefix.push(Insn::Label(start));

        let mut handler_code = vec![Insn::Label(handler)];
        if let Some(id) = spec.report_id {
            handler_code.extend([push_int(id, pool)?, Insn::Op(SWAP)]);
            handler_code.push(Insn::Cp {
                op: INVOKESTATIC,
                index: pool.add_method_ref(hooks::CLASS, hooks::FALLBACK.0, hooks::FALLBACK.1)?,
            });
        } else {
            handler_code.push(Insn::Op(POP));
        }
        handler_code.extend(reload(0..below));
        let ret = ValueKind::of(&call.ret);
        let first_arg = below + usize::from(!is_static);
        match &spec.fallback {
            Fallback::Default => handler_code.extend(ret.map(ValueKind::default_value)),
            Fallback::Null if call.ret.is_reference() => handler_code.push(Insn::Op(ACONST_NULL)),
            Fallback::Null => {
                return Err(Error::refused("fallback", format!("null cannot stand for {}", call.ret.java_name())))
            }
            Fallback::Constant(_) if call.ret == FieldType::Void => {
                return Err(Error::refused("fallback", "the call returns void: only the default fallback applies"))
            }
            Fallback::Constant(c) => handler_code.extend(push_constant(c, &call.ret, pool)?.0),
            Fallback::Argument(a) => {
                let p = call.params.get(*a as usize).ok_or_else(|| {
                    Error::refused(
                        "fallback",
                        format!("argument {a} does not exist: the call has {} arguments", call.params.len()),
                    )
                })?;
                if ValueKind::of(p) != ret {
                    return Err(Error::refused(
                        "fallback",
                        format!("argument {a} is {} but the call returns {}", p.java_name(), call.ret.java_name()),
                    ));
                }
                handler_code.extend(reload(first_arg + *a as usize..first_arg + *a as usize + 1));
            }
            Fallback::StaticMethod { class, name } => {
                handler_code.extend(reload(first_arg..state.stack.len()));
                let m = pool.add_method_ref(&class.replace('.', "/"), name, &owner_desc)?;
                handler_code.push(Insn::Cp { op: INVOKESTATIC, index: m });
            }
        }
        handler_code.push(Insn::Label(join));

        // [spill, reload, start:] call [end:] goto join; handler: ...; [join:]
        let mut suffix = vec![Insn::Label(end), Insn::Branch { op: GOTO, target: join }];
        suffix.extend(handler_code);
        code.insns.splice(at + 1..at + 1, suffix);
        code.insns.splice(at..at, prefix);

        let catch: Vec<String> = spec.catch.iter().map(|c| c.replace('.', "/")).collect();
        for (i, c) in catch.iter().enumerate() {
            let catch_type = pool.add_class(c)?;
            code.insert_handler(i, Handler { start, end, handler, catch_type });
        }
        if needs_frames(code, major) {
            let mut locals = state.locals.clone();
            locals.resize(code.max_locals as usize, VType::Top);
            for (i, t) in state.stack.iter().enumerate() {
                locals.push(t.clone());
                if t.is_wide() {
                    locals.push(VType::Top);
                }
                debug_assert_eq!(locals.len() - 1 - usize::from(t.is_wide()), slots[i] as usize);
            }
            let base = crate::analysis::State { locals, stack: Vec::new() }.to_frame();
            let caught: Arc<str> = match catch.as_slice() {
                [one] => Arc::from(one.as_str()),
                _ => Arc::from("java/lang/Throwable"),
            };
            let mut after = state.stack[..below].to_vec();
            if call.ret != FieldType::Void {
                after.push(crate::code::vtype_of(&call.ret));
            }
            let frames = code.frames_or_insert(pool)?;
            frames.push((handler, Frame { locals: base.locals.clone(), stack: vec![VType::Object(caught)] }));
            frames.push((join, Frame { locals: base.locals, stack: after }));
        }
        let below_slots: usize = state.stack[..below].iter().map(|t| if t.is_wide() { 2 } else { 1 }).sum();
        code.max_locals = u16::try_from(slot).map_err(|_| Error::limit("locals", "more than 65535 local slots"))?;
        code.max_stack = code.max_stack.max((below_slots + 2 + state.stack_slots()) as u16);
        Ok(())
    })?;
    cf.to_bytes()
}

/// Index in `insns` of the `site.occurrence`-th matching call.
/// The call at bytecode index `bci` of a method, as a [`CallSite`] (`name`, `descriptor`, and
/// which occurrence of that call it is): how fault localization turns "the fault is at bci N"
/// into a call-site guard. An error says what sits there when it is not a call.
pub fn call_at(class: &[u8], method: &super::MethodTarget, bci: u32) -> Result<CallSite> {
    let cf = ClassFile::parse(class)?;
    let index = cf.find_method(&method.name, method.descriptor.as_deref())?;
    let code = cf
        .find_attribute(&cf.methods[index].attributes, "Code")
        .ok_or_else(|| Error::not_found(format!("method {method}"), "has no code"))?;
    let data = &code.data;
    let len = data.get(4..8).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let bytes = data.get(8..8 + len).ok_or_else(|| Error::malformed("Code", "code_length past the attribute"))?;
    let mut calls: Vec<(u32, u16)> = Vec::new();
    let mut at_bci = None;
    crate::code::scan(bytes, |pc, op| {
        if (INVOKEVIRTUAL..=INVOKEINTERFACE).contains(&op) {
            if let Some(b) = bytes.get(pc as usize + 1..pc as usize + 3) {
                calls.push((pc, u16::from_be_bytes([b[0], b[1]])));
            }
        }
        if pc == bci {
            at_bci = Some(op);
        }
        pc < bci
    })?;
    let op =
        at_bci.ok_or_else(|| Error::not_found(format!("bci {bci}"), format!("is not an instruction of {method}")))?;
    let &(_, target) = calls.last().filter(|(pc, _)| *pc == bci).ok_or_else(|| {
        Error::refused("call site", format!("bci {bci} of {method} is {}, not a call", opcode_name(op)))
    })?;
    let r = cf.pool.member_ref(target)?;
    let occurrence = calls
        .iter()
        .filter(|(_, i)| cf.pool.member_ref(*i).is_ok_and(|m| m.name == r.name && m.descriptor == r.descriptor))
        .count() as u32;
    Ok(CallSite { owner: None, name: r.name.into_owned(), descriptor: Some(r.descriptor.into_owned()), occurrence })
}

/// The call of a method named `callee` on source `line` of a method, as a [`CallSite`]: how
/// fault localization finds the call that threw when only the exception's own stack trace is
/// known (bytecode capture sees the exception leave the method, not the instruction), which names
/// the callee without its descriptor and the caller's line. The first such call on the line when
/// there are several.
pub fn call_on_line(class: &[u8], method: &super::MethodTarget, line: u16, callee: &str) -> Result<CallSite> {
    let cf = ClassFile::parse(class)?;
    let index = cf.find_method(&method.name, method.descriptor.as_deref())?;
    let m = &cf.methods[index];
    let code = cf
        .find_attribute(&m.attributes, "Code")
        .ok_or_else(|| Error::not_found(format!("method {method}"), "has no code"))?;
    let raw = super::guard::raw_code(&code.data)?;
    let table = super::line_table(&cf, m)?
        .ok_or_else(|| Error::not_found(format!("method {method}"), "has no line numbers (compiled with -g:none?)"))?;
    // Each entry covers its pc up to the next entry's (in pc order), or the end of the code.
    let mut starts: Vec<u16> = table.iter().map(|(pc, _)| *pc).collect();
    starts.sort_unstable();
    let end_of = |start: u16| starts.iter().find(|s| **s > start).map_or(raw.code.len() as u32, |s| u32::from(*s));
    let ranges: Vec<(u32, u32)> =
        table.iter().filter(|(_, l)| *l == line).map(|(pc, _)| (u32::from(*pc), end_of(*pc))).collect();
    if ranges.is_empty() {
        return Err(Error::not_found(format!("line {line}"), format!("is not a line of {method}")));
    }
    let mut calls: Vec<(u32, u16)> = Vec::new();
    crate::code::scan(raw.code, |pc, op| {
        if (INVOKEVIRTUAL..=INVOKEINTERFACE).contains(&op) {
            if let Some(b) = raw.code.get(pc as usize + 1..pc as usize + 3) {
                calls.push((pc, u16::from_be_bytes([b[0], b[1]])));
            }
        }
        true
    })?;
    let on_line = |pc: u32| ranges.iter().any(|(start, end)| (*start..*end).contains(&pc));
    let (at, target) = calls
        .iter()
        .copied()
        .find(|(pc, i)| on_line(*pc) && cf.pool.member_ref(*i).is_ok_and(|r| r.name == callee))
        .ok_or_else(|| Error::not_found(format!("line {line} of {method}"), format!("makes no call of {callee}")))?;
    let r = cf.pool.member_ref(target)?;
    let occurrence = calls
        .iter()
        .filter(|(pc, i)| {
            *pc <= at && cf.pool.member_ref(*i).is_ok_and(|m| m.name == r.name && m.descriptor == r.descriptor)
        })
        .count() as u32;
    Ok(CallSite { owner: None, name: r.name.into_owned(), descriptor: Some(r.descriptor.into_owned()), occurrence })
}

/// A readable name for the opcodes a fault can sit on.
fn opcode_name(op: u8) -> String {
    match op {
        IDIV => "idiv".into(),
        LDIV => "ldiv".into(),
        IREM => "irem".into(),
        LREM => "lrem".into(),
        ATHROW => "athrow".into(),
        CHECKCAST => "checkcast".into(),
        GETFIELD => "getfield".into(),
        PUTFIELD => "putfield".into(),
        ARRAYLENGTH => "arraylength".into(),
        IALOAD..=SALOAD => "an array load".into(),
        IASTORE..=SASTORE => "an array store".into(),
        other => format!("opcode {other:#04x}"),
    }
}

fn find_call(insns: &[Insn], pool: &ConstantPool, site: &CallSite) -> Result<usize> {
    let owner = site.owner.as_ref().map(|o| o.replace('.', "/"));
    let mut seen = 0;
    for (i, insn) in insns.iter().enumerate() {
        let index = match insn {
            Insn::Cp { op: INVOKEVIRTUAL | INVOKESPECIAL | INVOKESTATIC, index }
            | Insn::InvokeInterface { index, .. } => *index,
            _ => continue,
        };
        let r = pool.member_ref(index)?;
        if r.name != site.name
            || site.descriptor.as_deref().is_some_and(|d| d != r.descriptor)
            || owner.as_deref().is_some_and(|o| o != r.class)
        {
            continue;
        }
        if r.name == "<init>" {
            return Err(Error::refused("guard", "a constructor call cannot be guarded at the call site"));
        }
        seen += 1;
        if seen == site.occurrence {
            return Ok(i);
        }
    }
    Err(Error::not_found(
        "guard",
        format!(
            "call #{} to {}{} not found: the method makes {seen} such call(s)",
            site.occurrence,
            site.name,
            site.descriptor.as_deref().unwrap_or("")
        ),
    ))
}

/// The called method's descriptor and whether the call is static.
fn call_shape(insn: &Insn, pool: &ConstantPool) -> Result<(String, bool)> {
    match insn {
        Insn::Cp { op, index } => Ok((pool.member_ref(*index)?.descriptor.into_owned(), *op == INVOKESTATIC)),
        Insn::InvokeInterface { index, .. } => Ok((pool.member_ref(*index)?.descriptor.into_owned(), false)),
        _ => Err(Error::malformed("guard", "not a call")),
    }
}
