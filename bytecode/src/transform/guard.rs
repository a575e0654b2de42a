//! `guard`: a try/catch over a whole method whose handler reports the fault and returns a
//! fallback. Constructors are guarded only after their `super(...)`/`this(...)` call.
//!
//! The handler's frame keeps no locals (every type is assignable to `top`), so the existing
//! frames need no change. A fallback that needs arguments reads copies saved at entry into fresh
//! slots, which the original code never writes; every frame is extended with those slots.

use std::sync::Arc;

use super::hooks;
use super::rethrow::{throw_insns, ThrowAs};
use super::{Constant, Fallback, GuardSpec};
use crate::classfile::{ClassFile, ACC_ABSTRACT, ACC_NATIVE};
use crate::code::opcodes::*;
use crate::code::{Code, Frame, Handler, Insn, MethodInfo, VType, ValueKind};
use crate::constant_pool::ConstantPool;
use crate::descriptor::{FieldType, MethodDescriptor};
use crate::error::{Error, Result};
use crate::transform::MethodTarget;

/// Guards one method of a class (whole body; see `call_site` for a single call).
pub fn guard(class: &[u8], spec: &GuardSpec) -> Result<Vec<u8>> {
    let mut cf = ClassFile::parse(class)?;
    let index = cf.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    guard_method(&mut cf, index, spec, Outcome::Fallback)?;
    cf.to_bytes()
}

/// What a guard's handler does with the exception it caught.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    /// Returns the spec's fallback.
    Fallback,
    /// Throws a new exception made from the caught one (`rethrow`); the fallback is not used.
    Throw(&'a ThrowAs),
}

/// Guards every method that has a body against `java.lang.Throwable` with the default fallback.
/// Methods that cannot be guarded are left as they were; returns the bytes and how many methods
/// were guarded and skipped.
pub fn guard_all(class: &[u8]) -> Result<(Vec<u8>, GuardAllStats)> {
    let mut cf = ClassFile::parse(class)?;
    let mut stats = GuardAllStats::default();
    let spec = GuardSpec {
        method: MethodTarget { name: String::new(), descriptor: None },
        catch: vec!["java/lang/Throwable".to_string()],
        fallback: Fallback::Default,
        call_site: None,
        report_id: None,
    };
    for i in 0..cf.methods.len() {
        if cf.methods[i].access & (ACC_ABSTRACT | ACC_NATIVE) != 0 {
            continue;
        }
        // A failed edit leaves the method as it was (at most unused pool entries remain).
        match guard_method(&mut cf, i, &spec, Outcome::Fallback) {
            Ok(()) => stats.guarded += 1,
            Err(e) => stats.skipped.push(e),
        }
    }
    Ok((cf.to_bytes()?, stats))
}

#[derive(Debug, Default)]
pub struct GuardAllStats {
    pub guarded: usize,
    /// Why each skipped method could not be guarded.
    pub skipped: Vec<Error>,
}

/// Decodes the method at `index`, hands its code to `edit`, recomputes `max_stack`, and stores
/// the re-encoded result.
pub fn edit_method(
    cf: &mut ClassFile,
    index: usize,
    edit: impl FnOnce(&mut Code, &mut ConstantPool, &MethodInfo<'_>, u16) -> Result<()>,
) -> Result<()> {
    let class_name = cf.name()?.into_owned();
    let m = &cf.methods[index];
    let name = cf.member_name(m)?.into_owned();
    let descriptor = cf.member_descriptor(m)?.into_owned();
    let context = format!("method {}.{name}{descriptor}", class_name.replace('/', "."));
    if m.access & (ACC_ABSTRACT | ACC_NATIVE) != 0 {
        return Err(Error::refused(context, "is abstract or native: it has no body to rewrite"));
    }
    let info = MethodInfo { class: &class_name, name: &name, descriptor: &descriptor, access: m.access };
    let code_at =
        cf.attribute_position(&m.attributes, "Code").ok_or_else(|| Error::malformed(&context, "no Code attribute"))?;
    let mut code =
        Code::decode(&cf.methods[index].attributes[code_at].data, &cf.pool, &info).map_err(|e| e.within(&context))?;
    let major = cf.major;
    edit(&mut code, &mut cf.pool, &info, major).map_err(|e| e.within(&context))?;
    // The edit's own estimate is an upper bound; the inference gives the exact depth (it cannot
    // follow jsr/ret subroutines of old class files, which keep the estimate).
    if let Ok(a) = crate::analysis::Analysis::run(&code, &cf.pool, &info, &crate::hierarchy::ObjectHierarchy) {
        code.max_stack = a.max_stack.min(u16::MAX as usize) as u16;
    }
    let data = code.encode(&mut cf.pool, &info).map_err(|e| e.within(&context))?;
    cf.methods[index].attributes[code_at].data = data;
    Ok(())
}

pub(crate) fn guard_method(cf: &mut ClassFile, index: usize, spec: &GuardSpec, outcome: Outcome<'_>) -> Result<()> {
    let reads_arguments = matches!(spec.fallback, Fallback::Argument(_) | Fallback::StaticMethod { .. });
    let m = &cf.methods[index];
    if spec.call_site.is_none()
        && !reads_arguments
        && m.access & (ACC_ABSTRACT | ACC_NATIVE) == 0
        && guard_appended(cf, index, spec, outcome)?
    {
        return Ok(());
    }
    edit_method(cf, index, |code, pool, info, major| guard_code(code, pool, info, major, spec, outcome))
}

/// The runs of instructions where `this` is initialized, as `[start, end)` indices into
/// `code.insns`: the whole body, or in a constructor what follows `super(...)`/`this(...)` on
/// every path (a constructor may call it on several paths, e.g. one per `switch` case).
pub fn initialized_ranges(code: &Code, pool: &ConstantPool, info: &MethodInfo<'_>) -> Result<Vec<(usize, usize)>> {
    let n = code.insns.len();
    if !info.is_constructor() || info.class == "java/lang/Object" {
        return Ok(vec![(0, n)]);
    }
    let frames: std::collections::HashMap<_, _> =
        code.frames().map(|f| f.iter().map(|(l, f)| (*l, f)).collect()).unwrap_or_default();
    let mut ranges = Vec::new();
    let mut uninit = true;
    // `new` objects not yet constructed: each is matched by one `<init>` call; an `<init>` call
    // with none pending is the one on `this`.
    let mut pending_new = 0usize;
    let mut run_start = None;
    let mut prefix_branches = false;
    for (i, insn) in code.insns.iter().enumerate() {
        match insn {
            Insn::Label(l) => {
                if let Some(f) = frames.get(l) {
                    let was = uninit;
                    uninit = f.locals.contains(&VType::UninitializedThis);
                    pending_new = f.stack.iter().filter(|t| matches!(t, VType::Uninitialized(_))).count();
                    if uninit && !was {
                        if let Some(s) = run_start.take() {
                            ranges.push((s, i));
                        }
                    } else if !uninit && run_start.is_none() {
                        run_start = Some(i);
                    }
                }
            }
            Insn::Cp { op: NEW, .. } => pending_new += 1,
            Insn::Cp { op: INVOKESPECIAL, index } if uninit && pool.member_ref(*index)?.name == "<init>" => {
                if pending_new == 0 {
                    uninit = false;
                    run_start = Some(i + 1);
                } else {
                    pending_new -= 1;
                }
            }
            other if uninit && (!other.targets().is_empty() || matches!(other, Insn::Local { op: RET, .. })) => {
                prefix_branches = true;
            }
            _ => {}
        }
    }
    if let Some(s) = run_start {
        ranges.push((s, n));
    }
    // A run holding only labels protects nothing (and an empty exception range is illegal).
    ranges.retain(|&(s, e)| code.insns[s..e].iter().any(|i| !matches!(i, Insn::Label(_))));
    if ranges.is_empty() {
        return Err(Error::refused("constructor", "no super(...) or this(...) call found"));
    }
    if frames.is_empty() && (prefix_branches || ranges.len() > 1) {
        // Without frames the state at a branch target is unknown: only straight-line prefixes.
        return Err(Error::refused(
            "constructor",
            "branches before super(...)/this(...) in a method without StackMapTable",
        ));
    }
    Ok(ranges)
}

/// Binds a start and an end label around each of [`initialized_ranges`], in code order: the
/// ranges a method-wide handler may protect.
pub fn label_initialized_ranges(
    code: &mut Code,
    pool: &ConstantPool,
    info: &MethodInfo<'_>,
) -> Result<Vec<(crate::code::Label, crate::code::Label)>> {
    let ranges = initialized_ranges(code, pool, info)?;
    let mut labelled = Vec::with_capacity(ranges.len());
    for &(s, e) in ranges.iter().rev() {
        let (start, end) = (code.new_label(), code.new_label());
        code.insns.insert(e, Insn::Label(end));
        code.insns.insert(s, Insn::Label(start));
        labelled.push((start, end));
    }
    labelled.reverse();
    Ok(labelled)
}

/// Whether StackMapTable frames must be written for this method.
pub fn needs_frames(code: &Code, major: u16) -> bool {
    major >= 51 || code.frames().is_some()
}

fn guard_code(
    code: &mut Code,
    pool: &mut ConstantPool,
    info: &MethodInfo<'_>,
    major: u16,
    spec: &GuardSpec,
    outcome: Outcome<'_>,
) -> Result<()> {
    if spec.call_site.is_some() {
        return Err(Error::refused("guard", "a call-site guard goes through call_site::guard_call_site"));
    }
    let desc = MethodDescriptor::parse(info.descriptor)?;
    check_fallback(&spec.fallback, &desc)?;

    // Arguments the fallback needs, saved at entry into fresh slots: (kind, from slot, to slot).
    let first_param = if info.is_static() { 0 } else { 1 };
    let param_slot = |i: usize| first_param + desc.params[..i].iter().map(FieldType::size).sum::<usize>();
    let needed: Vec<usize> = match &spec.fallback {
        Fallback::Argument(i) => vec![*i as usize],
        Fallback::StaticMethod { .. } => (0..desc.params.len()).collect(),
        _ => Vec::new(),
    };
    let old_max_locals = code.max_locals as usize;
    let mut saved = Vec::with_capacity(needed.len());
    let mut next = old_max_locals;
    for &p in &needed {
        let t = &desc.params[p];
        saved.push((
            ValueKind::of(t).expect("parameters are never void"),
            param_slot(p) as u16,
            next as u16,
            t.clone(),
        ));
        next += t.size();
    }
    let max_locals = u16::try_from(next).map_err(|_| Error::limit("locals", "more than 65535 local slots"))?;

    let labelled = label_initialized_ranges(code, pool, info)?;
    let handler = code.new_label();
    let copies: Vec<Insn> =
        saved.iter().flat_map(|(k, from, to, _)| [Insn::load(*k, *from), Insn::store(*k, *to)]).collect();
    code.insns.splice(0..0, copies);
    code.insns.push(Insn::Label(handler));

    let (handler_code, stack_needed) = handler_insns(spec, &desc, info, &saved, pool, outcome)?;
    code.insns.extend(handler_code);

    let catch_names: Vec<String> = spec.catch.iter().map(|c| c.replace('.', "/")).collect();
    for &(start, end) in &labelled {
        for c in &catch_names {
            let catch_type = pool.add_class(c)?;
            code.handlers.push(Handler { start, end, handler, catch_type });
        }
    }

    if needs_frames(code, major) {
        let saved_types: Vec<VType> = saved.iter().map(|s| crate::code::vtype_of(&s.3)).collect();
        let frames = code.frames_or_insert(pool)?;
        if !saved_types.is_empty() {
            for (_, f) in frames.iter_mut() {
                extend_locals(f, old_max_locals, &saved_types);
            }
        }
        let caught: Arc<str> = match catch_names.as_slice() {
            [one] => Arc::from(one.as_str()),
            _ => Arc::from("java/lang/Throwable"),
        };
        let mut locals = Vec::new();
        if !saved_types.is_empty() {
            locals = vec![VType::Top; old_max_locals];
            locals.extend(saved_types);
        }
        // The encoder orders frames by offset.
        frames.push((handler, Frame { locals, stack: vec![VType::Object(caught)] }));
    }
    code.max_locals = max_locals;
    code.max_stack = code.max_stack.max(stack_needed as u16);
    Ok(())
}

/// The handler body: report the fault when asked, then return the fallback (or throw, for
/// [`Outcome::Throw`]). Returns the instructions and the operand stack they need. `saved` lists
/// the argument copies (kind, from, to, type) the fallback reads.
fn handler_insns(
    spec: &GuardSpec,
    desc: &MethodDescriptor,
    info: &MethodInfo<'_>,
    saved: &[(ValueKind, u16, u16, FieldType)],
    pool: &mut ConstantPool,
    outcome: Outcome<'_>,
) -> Result<(Vec<Insn>, usize)> {
    let mut insns = Vec::with_capacity(12);
    let throws = matches!(outcome, Outcome::Throw(_));
    match spec.report_id {
        Some(id) => {
            // A new exception is made from the caught one: the report takes a copy.
            if throws {
                insns.push(Insn::Op(DUP));
            }
            insns.push(push_int(id, pool)?);
            insns.push(Insn::Op(SWAP));
            let m = pool.add_method_ref(hooks::CLASS, hooks::FALLBACK.0, hooks::FALLBACK.1)?;
            insns.push(Insn::Cp { op: INVOKESTATIC, index: m });
        }
        None if !throws => insns.push(Insn::Op(POP)),
        None => {}
    }
    let (end, stack_needed) = match outcome {
        Outcome::Fallback => fallback_return(&spec.fallback, desc, info, saved, pool)?,
        Outcome::Throw(t) => throw_insns(t, pool)?,
    };
    insns.extend(end);
    Ok((insns, stack_needed.max(2 + usize::from(throws))))
}

/// Instructions that return `fallback` from a method of type `desc`, and the operand stack they
/// need. `saved` lists where the arguments the fallback reads are (kind, from, to, type).
pub(crate) fn fallback_return(
    fallback: &Fallback,
    desc: &MethodDescriptor,
    info: &MethodInfo<'_>,
    saved: &[(ValueKind, u16, u16, FieldType)],
    pool: &mut ConstantPool,
) -> Result<(Vec<Insn>, usize)> {
    let ret = ValueKind::of(&desc.ret);
    let mut insns = Vec::with_capacity(4);
    let mut stack_needed: usize = 0;
    match fallback {
        Fallback::Default => {
            if let Some(k) = ret {
                insns.push(k.default_value());
            }
        }
        Fallback::Null => insns.push(Insn::Op(ACONST_NULL)),
        Fallback::Constant(c) => {
            let (push, slots) = push_constant(c, &desc.ret, pool)?;
            stack_needed = stack_needed.max(slots);
            insns.extend(push);
        }
        Fallback::Argument(_) => {
            let (k, _, to, _) = &saved[0];
            insns.push(Insn::load(*k, *to));
        }
        Fallback::StaticMethod { class, name } => {
            for (k, _, to, _) in saved {
                insns.push(Insn::load(*k, *to));
            }
            stack_needed = stack_needed.max(desc.param_slots());
            let m = pool.add_method_ref(&class.replace('.', "/"), name, info.descriptor)?;
            insns.push(Insn::Cp { op: INVOKESTATIC, index: m });
        }
    }
    stack_needed = stack_needed.max(desc.ret.size());
    insns.push(Insn::Op(ret.map_or(RETURN, ValueKind::return_op)));
    Ok((insns, stack_needed))
}

/// Where a constructor's body starts: the offset after its `super(...)`/`this(...)` call when the
/// code before it is straight-line and unprotected (then that call dominates the rest);
/// `None` when a full analysis is needed.
pub(crate) fn straight_constructor_start(code: &[u8], table: &[u8], pool: &ConstantPool) -> Result<Option<u32>> {
    let mut pending_new = 0usize;
    let mut start = None;
    let mut complex = false;
    let mut bad_index = None;
    crate::code::scan(code, |pc, op| match op {
        NEW => {
            pending_new += 1;
            true
        }
        INVOKESPECIAL => {
            let index = code.get(pc as usize + 1..pc as usize + 3).map(|b| u16::from_be_bytes([b[0], b[1]]));
            match index.map(|i| pool.member_ref(i)) {
                Some(Ok(r)) if r.name == "<init>" => {
                    if pending_new == 0 {
                        start = Some(pc + 3);
                        return false;
                    }
                    pending_new -= 1;
                }
                Some(Ok(_)) => {}
                _ => bad_index = Some(pc),
            }
            true
        }
        IFEQ..=RET | TABLESWITCH | LOOKUPSWITCH | IFNULL | IFNONNULL | GOTO_W | JSR_W | ATHROW | IRETURN..=RETURN => {
            complex = true;
            false
        }
        _ => true,
    })?;
    if let Some(pc) = bad_index {
        return Err(Error::malformed("code", format!("invokespecial at {pc} without a method reference")));
    }
    let Some(start) = start else { return Ok(None) };
    let protected_prefix = table.chunks_exact(8).any(|e| (u16::from_be_bytes([e[0], e[1]]) as u32) < start);
    Ok(if complex || protected_prefix || start as usize >= code.len() { None } else { Some(start) })
}

/// Guards a method whose code need not move: the handler is appended after the last
/// instruction, so no offset changes and nothing is decoded. Applies when the fallback reads no
/// arguments and the protected range is the whole body (or a constructor's straight-line tail).
/// Returns false, changing nothing, when the method needs the general path.
fn guard_appended(cf: &mut ClassFile, index: usize, spec: &GuardSpec, outcome: Outcome<'_>) -> Result<bool> {
    let class_name = cf.name()?.into_owned();
    let m = &cf.methods[index];
    let name = cf.member_name(m)?.into_owned();
    let descriptor = cf.member_descriptor(m)?.into_owned();
    let context = format!("method {}.{name}{descriptor}", class_name.replace('/', "."));
    let info = MethodInfo { class: &class_name, name: &name, descriptor: &descriptor, access: m.access };
    let code_at =
        cf.attribute_position(&m.attributes, "Code").ok_or_else(|| Error::malformed(&context, "no Code attribute"))?;
    let desc = MethodDescriptor::parse(&descriptor).map_err(|e| e.within(&context))?;
    check_fallback(&spec.fallback, &desc).map_err(|e| e.within(&context))?;

    // Moved out while the pool grows; put back unless replaced.
    let data = std::mem::take(&mut cf.methods[index].attributes[code_at].data);
    let mut edit = || -> Result<Option<Vec<u8>>> {
        let raw = raw_code(&data)?;
        let start = if info.is_constructor() && class_name != "java/lang/Object" {
            match straight_constructor_start(raw.code, raw.table, &cf.pool).map_err(|e| e.within(&context))? {
                Some(s) => s,
                None => return Ok(None),
            }
        } else {
            0
        };
        let (handler_code, stack_needed) =
            handler_insns(spec, &desc, &info, &[], &mut cf.pool, outcome).map_err(|e| e.within(&context))?;
        let catch: Vec<String> = spec.catch.iter().map(|c| c.replace('.', "/")).collect();
        append_handler(cf, &context, raw, start, &catch, &handler_code, stack_needed).map(Some)
    };
    let result = edit();
    match result {
        Ok(Some(new)) => {
            cf.methods[index].attributes[code_at].data = new;
            Ok(true)
        }
        Ok(None) => {
            cf.methods[index].attributes[code_at].data = data;
            Ok(false)
        }
        Err(e) => {
            cf.methods[index].attributes[code_at].data = data;
            Err(e)
        }
    }
}

/// The parts of a raw `Code` attribute an appended handler keeps.
pub(crate) struct RawCode<'a> {
    pub(crate) code: &'a [u8],
    pub(crate) table: &'a [u8],
    max_stack: u16,
    max_locals: u16,
    pub(crate) attributes: Vec<crate::classfile::Attribute>,
}

/// Splits a raw `Code` attribute without decoding its instructions.
pub(crate) fn raw_code(data: &[u8]) -> Result<RawCode<'_>> {
    use crate::bytes::Reader;
    let mut r = Reader::new(data, "Code attribute");
    let max_stack = r.u16()?;
    let max_locals = r.u16()?;
    let code_length = r.u32()? as usize;
    let code = r.bytes(code_length)?;
    let handlers = r.u16()?;
    let table = r.bytes(handlers as usize * 8)?;
    let attributes = crate::classfile::parse_attributes(&mut r)?;
    r.finish()?;
    Ok(RawCode { code, table, max_stack, max_locals, attributes })
}

/// A `Code` attribute with `handler_code` appended after the last instruction and one handler
/// entry per catch type (`""`: any) over `[start, end of the old code)`, placed last; with a
/// frame at the handler (locals none, stack the caught type) when the method needs frames.
pub(crate) fn append_handler(
    cf: &mut ClassFile,
    context: &str,
    raw: RawCode<'_>,
    start: u32,
    catch: &[String],
    handler_code: &[Insn],
    stack_needed: usize,
) -> Result<Vec<u8>> {
    use crate::bytes::Writer;
    use crate::classfile::{write_attributes, Attribute};
    let RawCode { code, table, max_stack, max_locals, mut attributes } = raw;
    let code_length = code.len();
    let pc = code_length as u32;
    let handler_bytes = crate::code::encode_linear(handler_code, pc)?;
    let new_length = code_length + handler_bytes.len();
    if new_length > 65535 {
        return Err(Error::limit(context, format!("{new_length} bytes of code exceed the 65535-byte limit")));
    }
    let catch_names = catch;
    let mut w = Writer::with_capacity(code_length + table.len() + handler_bytes.len() + 64);
    w.u16(max_stack.max(stack_needed as u16));
    w.u16(max_locals);
    w.u32(new_length as u32);
    w.bytes(code);
    w.bytes(&handler_bytes);
    w.len16(table.len() / 8 + catch_names.len(), "exception table")?;
    w.bytes(table);
    for c in catch_names {
        w.u16(start as u16);
        w.u16(pc as u16);
        w.u16(pc as u16);
        w.u16(if c.is_empty() { 0 } else { cf.pool.add_class(c)? });
    }
    let has_table = cf.attribute_position(&attributes, "StackMapTable");
    if has_table.is_some() || cf.major >= 51 {
        let caught = match catch_names {
            [one] if !one.is_empty() => cf.pool.add_class(one)?,
            _ => cf.pool.add_class("java/lang/Throwable")?,
        };
        let (count, last) = match has_table {
            Some(i) => crate::code::stackmap::last_frame_offset(&attributes[i].data).map_err(|e| e.within(context))?,
            None => (0, None),
        };
        let delta = match last {
            None => pc,
            Some(l) if l < pc => pc - l - 1,
            // Only a malformed table has a frame past the end of the code.
            Some(l) => {
                return Err(Error::malformed(
                    context,
                    format!("StackMapTable has a frame at {l}, past the code's end {pc}"),
                ))
            }
        } as u16;
        let mut frame = Vec::with_capacity(10);
        frame.extend_from_slice(&[255]);
        frame.extend_from_slice(&delta.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 1, 7]);
        frame.extend_from_slice(&caught.to_be_bytes());
        match has_table {
            Some(i) => {
                let t = &mut attributes[i].data;
                t[..2].copy_from_slice(&(count + 1).to_be_bytes());
                t.extend_from_slice(&frame);
            }
            None => {
                let mut t = vec![0, 1];
                t.extend_from_slice(&frame);
                attributes.push(Attribute { name: cf.pool.add_utf8("StackMapTable")?, data: t });
            }
        }
    }
    write_attributes(&mut w, &attributes)?;
    Ok(w.into_inner())
}

/// Pads `f.locals` with `top` up to `slots` slots, then appends `extra`.
pub fn extend_locals(f: &mut Frame, slots: usize, extra: &[VType]) {
    let mut used = f.local_slots();
    while used < slots {
        f.locals.push(VType::Top);
        used += 1;
    }
    f.locals.extend(extra.iter().cloned());
}

pub(crate) fn check_fallback(f: &Fallback, desc: &MethodDescriptor) -> Result<()> {
    let ret = &desc.ret;
    match f {
        Fallback::Null if !ret.is_reference() => {
            Err(Error::refused("fallback", format!("null cannot be returned as {}", ret.java_name())))
        }
        Fallback::Argument(i) => match desc.params.get(*i as usize) {
            None => Err(Error::refused(
                "fallback",
                format!("argument {i} does not exist: the method has {} parameters", desc.params.len()),
            )),
            Some(p) if ValueKind::of(p) != ValueKind::of(ret) || (p.is_reference() != ret.is_reference()) => {
                Err(Error::refused(
                    "fallback",
                    format!("argument {i} is {} but the method returns {}", p.java_name(), ret.java_name()),
                ))
            }
            Some(_) => Ok(()),
        },
        Fallback::Constant(_) if *ret == FieldType::Void => {
            Err(Error::refused("fallback", "the method returns void: only the default fallback applies"))
        }
        _ => Ok(()),
    }
}

/// Instructions pushing `v` as a value of type `t`, and the stack slots they need.
pub fn push_constant(v: &Constant, t: &FieldType, pool: &mut ConstantPool) -> Result<(Vec<Insn>, usize)> {
    let mismatch = || Error::refused("fallback", format!("value {v:?} cannot be returned as {}", t.java_name()));
    let int_in = |lo: i64, hi: i64| match v {
        Constant::Int(i) if (lo..=hi).contains(i) => Ok(*i as i32),
        Constant::Bool(b) if lo == 0 && hi == 1 => Ok(*b as i32),
        _ => Err(mismatch()),
    };
    Ok(match t {
        FieldType::Boolean => (vec![push_int(int_in(0, 1)?, pool)?], 1),
        FieldType::Byte => (vec![push_int(int_in(i8::MIN as i64, i8::MAX as i64)?, pool)?], 1),
        FieldType::Short => (vec![push_int(int_in(i16::MIN as i64, i16::MAX as i64)?, pool)?], 1),
        FieldType::Char => (vec![push_int(int_in(0, u16::MAX as i64)?, pool)?], 1),
        FieldType::Int => (vec![push_int(int_in(i32::MIN as i64, i32::MAX as i64)?, pool)?], 1),
        FieldType::Long => {
            let Constant::Int(i) = v else { return Err(mismatch()) };
            (vec![push_long(*i, pool)?], 2)
        }
        FieldType::Float => {
            let f = match v {
                Constant::Int(i) => *i as f32,
                Constant::Float(f) => *f as f32,
                _ => return Err(mismatch()),
            };
            let index = pool.add(crate::constant_pool::Constant::Float(f.to_bits()))?;
            (vec![Insn::Ldc { op: LDC_W, index }], 1)
        }
        FieldType::Double => {
            let d = match v {
                Constant::Int(i) => *i as f64,
                Constant::Float(f) => *f,
                _ => return Err(mismatch()),
            };
            let index = pool.add(crate::constant_pool::Constant::Double(d.to_bits()))?;
            (vec![Insn::Ldc { op: LDC2_W, index }], 2)
        }
        FieldType::Object(name) => match (name.as_str(), v) {
            ("java/lang/String" | "java/lang/Object" | "java/lang/CharSequence", Constant::String(s)) => {
                (vec![Insn::Ldc { op: LDC_W, index: pool.add_string(s)? }], 1)
            }
            (boxed, _) => {
                let Some(prim) = unboxed(boxed) else { return Err(mismatch()) };
                let (mut insns, slots) = push_constant(v, &prim, pool)?;
                let m = pool.add_method_ref(boxed, "valueOf", &format!("({}){}", prim.descriptor(), t.descriptor()))?;
                insns.push(Insn::Cp { op: INVOKESTATIC, index: m });
                (insns, slots)
            }
        },
        FieldType::Array(_) | FieldType::Void => return Err(mismatch()),
    })
}

fn unboxed(class: &str) -> Option<FieldType> {
    Some(match class {
        "java/lang/Integer" => FieldType::Int,
        "java/lang/Long" => FieldType::Long,
        "java/lang/Short" => FieldType::Short,
        "java/lang/Byte" => FieldType::Byte,
        "java/lang/Character" => FieldType::Char,
        "java/lang/Boolean" => FieldType::Boolean,
        "java/lang/Float" => FieldType::Float,
        "java/lang/Double" => FieldType::Double,
        _ => return None,
    })
}

/// The shortest instruction pushing an int.
pub fn push_int(v: i32, pool: &mut ConstantPool) -> Result<Insn> {
    Ok(match v {
        -1..=5 => Insn::Op((ICONST_0 as i32 + v) as u8),
        -128..=127 => Insn::Bipush(v as i8),
        -32768..=32767 => Insn::Sipush(v as i16),
        _ => Insn::Ldc { op: LDC_W, index: pool.add(crate::constant_pool::Constant::Integer(v))? },
    })
}

fn push_long(v: i64, pool: &mut ConstantPool) -> Result<Insn> {
    Ok(match v {
        0 => Insn::Op(LCONST_0),
        1 => Insn::Op(LCONST_1),
        _ => Insn::Ldc { op: LDC2_W, index: pool.add(crate::constant_pool::Constant::Long(v))? },
    })
}
