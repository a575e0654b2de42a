//! `probe`: calls into the runtime hooks (`repair/rt/Hooks`, see [`super::hooks`]) at method
//! entry, normal exit, exceptional exit and before source lines, optionally with the arguments,
//! the return value and a `System.nanoTime()` timestamp. The method computes what it did before.

use std::sync::Arc;

use super::guard::{edit_method, label_initialized_ranges, needs_frames, push_int};
use super::{hooks, ProbePoint, ProbeSpec};
use crate::classfile::{ClassFile, ACC_ABSTRACT, ACC_NATIVE};
use crate::code::opcodes::*;
use crate::code::{CodeAttribute, Frame, Handler, Insn, VType};
use crate::constant_pool::ConstantPool;
use crate::descriptor::{FieldType, MethodDescriptor};
use crate::error::{Error, Result};

/// Extra operand stack the probes use on top of what the method had: a packed entry's id,
/// shape, four `long`s and four references (an `Object[]` being filled takes six).
const EXTRA_STACK: u16 = 14;

pub fn probe(class: &[u8], spec: &ProbeSpec) -> Result<Vec<u8>> {
    let mut cf = ClassFile::parse(class)?;
    let index = cf.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    probe_method(&mut cf, index, spec)?;
    cf.to_bytes()
}

/// Entry, exit and throw probes on every method with a body, with ids `probe_id_base`,
/// `probe_id_base + 1`, ... in method order. Returns the bytes and how many methods were probed;
/// methods that cannot be probed are left as they were.
pub fn probe_all(class: &[u8], probe_id_base: i32) -> Result<(Vec<u8>, usize)> {
    let mut cf = ClassFile::parse(class)?;
    let mut probed = 0;
    for i in 0..cf.methods.len() {
        if cf.methods[i].access & (ACC_ABSTRACT | ACC_NATIVE) != 0 {
            continue;
        }
        let spec = ProbeSpec {
            method: super::MethodTarget { name: String::new(), descriptor: None },
            points: vec![ProbePoint::Entry, ProbePoint::Exit, ProbePoint::Throw],
            probe_id: probe_id_base.wrapping_add(i as i32),
            capture_args: false,
            capture_this: false,
            capture_return: false,
            timestamp: false,
        };
        if probe_method(&mut cf, i, &spec).is_ok() {
            probed += 1;
        }
    }
    Ok((cf.to_bytes()?, probed))
}

/// `invokestatic class.name descriptor`.
fn invoke_static(pool: &mut ConstantPool, class: &str, name: &str, descriptor: &str) -> Result<Insn> {
    Ok(Insn::Cp { op: INVOKESTATIC, index: pool.add_method_ref(class, name, descriptor)? })
}

pub(crate) fn hook(pool: &mut ConstantPool, (name, descriptor): (&str, &str)) -> Result<Insn> {
    invoke_static(pool, hooks::CLASS, name, descriptor)
}

fn nano_time(pool: &mut ConstantPool) -> Result<Insn> {
    invoke_static(pool, "java/lang/System", "nanoTime", "()J")
}

/// Widens the primitive of type `t` on top of the stack to the `long` [`hooks::packed`] carries.
fn widen(t: &FieldType, pool: &mut ConstantPool) -> Result<Vec<Insn>> {
    Ok(match t {
        FieldType::Long => Vec::new(),
        FieldType::Double => vec![invoke_static(pool, "java/lang/Double", "doubleToRawLongBits", "(D)J")?],
        FieldType::Float => {
            vec![invoke_static(pool, "java/lang/Float", "floatToRawIntBits", "(F)I")?, Insn::Op(I2L)]
        }
        _ => vec![Insn::Op(I2L)],
    })
}

/// A packed entry's arguments (see [`hooks::ENTER_PACKED`]): the shape, the primitives widened,
/// then the references, each run padded to its four slots.
fn packed_arguments(
    params: &[FieldType],
    this: bool,
    is_static: bool,
    shape: i32,
    pool: &mut ConstantPool,
) -> Result<Vec<Insn>> {
    use crate::code::ValueKind;
    let mut slots = Vec::with_capacity(params.len());
    let mut slot = if is_static { 0 } else { 1 };
    for t in params {
        slots.push(slot);
        slot += t.size() as u16;
    }
    let mut call = vec![push_int(shape, pool)?];
    let mut primitives = 0;
    for (t, &slot) in params.iter().zip(&slots).filter(|(t, _)| !t.is_reference()) {
        call.push(Insn::load(ValueKind::of(t).expect("parameters are not void"), slot));
        call.extend(widen(t, pool)?);
        primitives += 1;
    }
    call.extend((primitives..hooks::packed::PRIMITIVES).map(|_| Insn::Op(LCONST_0)));
    let mut references: Vec<u16> =
        params.iter().zip(&slots).filter(|(t, _)| t.is_reference()).map(|(_, &slot)| slot).collect();
    if this {
        references.push(0);
    }
    call.extend(references.iter().map(|&slot| Insn::load(ValueKind::Reference, slot)));
    call.extend((references.len()..hooks::packed::REFERENCES).map(|_| Insn::Op(ACONST_NULL)));
    Ok(call)
}

/// Boxes the value of type `t` on top of the stack into its wrapper (references stay).
pub(crate) fn boxing(t: &FieldType, pool: &mut ConstantPool) -> Result<Option<Insn>> {
    let (class, prim) = match t {
        FieldType::Int => ("java/lang/Integer", "I"),
        FieldType::Long => ("java/lang/Long", "J"),
        FieldType::Float => ("java/lang/Float", "F"),
        FieldType::Double => ("java/lang/Double", "D"),
        FieldType::Boolean => ("java/lang/Boolean", "Z"),
        FieldType::Byte => ("java/lang/Byte", "B"),
        FieldType::Char => ("java/lang/Character", "C"),
        FieldType::Short => ("java/lang/Short", "S"),
        _ => return Ok(None),
    };
    invoke_static(pool, class, "valueOf", &format!("({prim})L{class};")).map(Some)
}

fn probe_method(cf: &mut ClassFile, index: usize, spec: &ProbeSpec) -> Result<()> {
    edit_method(cf, index, |code, pool, info, major| {
        let desc = MethodDescriptor::parse(info.descriptor)?;
        let id = spec.probe_id;
        let wants = |p: ProbePoint| spec.points.contains(&p);

        // Lines first: they refer to labels that stay where they are.
        for p in &spec.points {
            let ProbePoint::Line(line) = *p else { continue };
            let labels: Vec<_> = code
                .attributes
                .iter()
                .flat_map(|(_, a)| match a {
                    CodeAttribute::LineNumbers(l) => l.iter().filter(|(_, n)| *n == line).map(|(l, _)| *l).collect(),
                    _ => Vec::new(),
                })
                .collect();
            if labels.is_empty() {
                let mut lines: Vec<u16> = code
                    .attributes
                    .iter()
                    .flat_map(|(_, a)| match a {
                        CodeAttribute::LineNumbers(l) => l.iter().map(|(_, n)| *n).collect(),
                        _ => Vec::new(),
                    })
                    .collect();
                lines.sort_unstable();
                lines.dedup();
                let first = lines.first().copied().unwrap_or(0);
                let last = lines.last().copied().unwrap_or(0);
                return Err(Error::not_found(
                    "probe",
                    if lines.is_empty() {
                        format!("no line {line}: the method has no line numbers")
                    } else {
                        format!("no code on line {line}: the method spans lines {first}..{last}")
                    },
                ));
            }
            for l in labels {
                let at = code
                    .insns
                    .iter()
                    .position(|i| *i == Insn::Label(l))
                    .ok_or_else(|| Error::malformed("LineNumberTable", "line label not in code"))?;
                // After every label at this spot, so branches to the line run the probe too.
                let at = at + code.insns[at..].iter().take_while(|i| matches!(i, Insn::Label(_))).count();
                let call = [push_int(id, pool)?, push_int(line as i32, pool)?, hook(pool, hooks::LINE)?];
                code.insns.splice(at..at, call);
            }
        }

        if wants(ProbePoint::Exit) {
            let mut i = 0;
            while i < code.insns.len() {
                let is_return = matches!(code.insns[i], Insn::Op(op) if (IRETURN..=RETURN).contains(&op));
                if !is_return {
                    i += 1;
                    continue;
                }
                let mut call = Vec::with_capacity(6);
                if spec.capture_return {
                    match &desc.ret {
                        FieldType::Void => call.push(Insn::Op(ACONST_NULL)),
                        t if !t.is_reference() => {
                            let type_code = hooks::packed::Code::of(t).expect("not void") as i32;
                            call.push(Insn::Op(if t.size() == 2 { DUP2 } else { DUP }));
                            call.extend(widen(t, pool)?);
                            call.extend([
                                push_int(id, pool)?,
                                push_int(type_code, pool)?,
                                hook(pool, hooks::EXIT_PRIMITIVE)?,
                            ]);
                            let n = call.len();
                            code.insns.splice(i..i, call);
                            i += n + 1;
                            continue;
                        }
                        t => {
                            call.push(Insn::Op(if t.size() == 2 { DUP2 } else { DUP }));
                            call.extend(boxing(t, pool)?);
                        }
                    }
                    call.extend([push_int(id, pool)?, Insn::Op(SWAP), hook(pool, hooks::EXIT_VALUE)?]);
                } else if spec.timestamp {
                    call.extend([push_int(id, pool)?, nano_time(pool)?, hook(pool, hooks::EXIT_AT)?]);
                } else {
                    call.extend([push_int(id, pool)?, hook(pool, hooks::EXIT)?]);
                }
                let n = call.len();
                code.insns.splice(i..i, call);
                i += n + 1;
            }
        }

        if wants(ProbePoint::Throw) {
            let labelled = label_initialized_ranges(code, pool, info)?;
            let handler = code.new_label();
            code.insns.push(Insn::Label(handler));
            code.insns.extend([
                Insn::Op(DUP),
                push_int(id, pool)?,
                Insn::Op(SWAP),
                hook(pool, hooks::THROWN)?,
                Insn::Op(ATHROW),
            ]);
            for (start, end) in labelled {
                code.handlers.push(Handler { start, end, handler, catch_type: 0 });
            }
            if needs_frames(code, major) {
                let frames = code.frames_or_insert(pool)?;
                frames.push((
                    handler,
                    Frame { locals: Vec::new(), stack: vec![VType::Object(Arc::from("java/lang/Throwable"))] },
                ));
            }
        }

        if wants(ProbePoint::Entry) {
            let mut call = vec![push_int(id, pool)?];
            let this = spec.capture_this && !info.is_static() && !info.is_constructor();
            let packed = spec.capture_args.then(|| hooks::packed::shape(&desc.params, this)).flatten();
            if let Some(shape) = packed {
                call.extend(packed_arguments(&desc.params, this, info.is_static(), shape, pool)?);
                call.push(hook(pool, hooks::ENTER_PACKED)?);
            } else if spec.capture_args {
                call.push(push_int(desc.params.len() as i32 + i32::from(this), pool)?);
                call.push(Insn::Cp { op: ANEWARRAY, index: pool.add_class("java/lang/Object")? });
                if this {
                    call.extend([
                        Insn::Op(DUP),
                        push_int(desc.params.len() as i32, pool)?,
                        Insn::load(crate::code::ValueKind::Reference, 0),
                        Insn::Op(AASTORE),
                    ]);
                }
                let mut slot = if info.is_static() { 0 } else { 1 };
                for (i, t) in desc.params.iter().enumerate() {
                    call.push(Insn::Op(DUP));
                    call.push(push_int(i as i32, pool)?);
                    let kind = crate::code::ValueKind::of(t).expect("parameters are not void");
                    call.push(Insn::load(kind, slot));
                    call.extend(boxing(t, pool)?);
                    call.push(Insn::Op(AASTORE));
                    slot += t.size() as u16;
                }
                call.push(hook(pool, hooks::ENTER_ARGS)?);
            } else if spec.timestamp {
                call.push(nano_time(pool)?);
                call.push(hook(pool, hooks::ENTER_AT)?);
            } else {
                call.push(hook(pool, hooks::ENTER)?);
            }
            code.insns.splice(0..0, call);
        }

        code.max_stack = code.max_stack.saturating_add(EXTRA_STACK);
        Ok(())
    })
}

/// Exception-exit probes (`Hooks.thrown`, then rethrow) on every method with a body: the
/// agent's default fault capture. The handler is appended after the last instruction, so no
/// method is decoded; a constructor whose `super(...)` call is not on a straight-line prefix
/// takes the general path. Method `i` reports probe id `first_id + i`: `first_id` is asked of
/// `probe_ids` with the number of methods and [`methods_digest`] of the class, so the caller can
/// hand every class its own range, and the same range again when the same class is rewritten
/// again (`None`: no ids left, nothing is probed). Returns the bytes and how many methods got a
/// probe.
pub fn throw_probe_all(class: &[u8], probe_ids: impl FnOnce(usize, u64) -> Option<i32>) -> Result<(Vec<u8>, usize)> {
    use super::guard::{append_handler, raw_code, straight_constructor_start};
    let mut cf = ClassFile::parse(class)?;
    let class_name = cf.name()?.into_owned();
    let Some(probe_id_base) = probe_ids(cf.methods.len(), methods_digest(&cf)?) else {
        return Ok((class.to_vec(), 0));
    };
    let mut probed = 0;
    for i in 0..cf.methods.len() {
        let m = &cf.methods[i];
        let Some(code_at) = cf.attribute_position(&m.attributes, "Code") else { continue };
        if m.access & (ACC_ABSTRACT | ACC_NATIVE) != 0 {
            continue;
        }
        let id = probe_id_base.wrapping_add(i as i32);
        let is_constructor = cf.pool.is_utf8(m.name, "<init>") && class_name != "java/lang/Object";
        let context = format!("method {} #{i}", class_name.replace('/', "."));
        let data = std::mem::take(&mut cf.methods[i].attributes[code_at].data);
        let mut edit = || -> Result<Option<Vec<u8>>> {
            let raw = raw_code(&data)?;
            let start = if is_constructor {
                match straight_constructor_start(raw.code, raw.table, &cf.pool)? {
                    Some(s) => s,
                    None => return Ok(None),
                }
            } else {
                0
            };
            // The id as `base + i`: one pool constant per class, not one per method (a constant
            // per method made the pool's dedup index the rewrite's largest cost).
            let mut handler = vec![Insn::Op(DUP), push_int(probe_id_base, &mut cf.pool)?];
            if i > 0 {
                handler.extend([push_int(i as i32, &mut cf.pool)?, Insn::Op(IADD)]);
            }
            handler.extend([Insn::Op(SWAP), hook(&mut cf.pool, hooks::THROWN)?, Insn::Op(ATHROW)]);
            append_handler(&mut cf, &context, raw, start, &[String::new()], &handler, 4).map(Some)
        };
        let result = edit();
        match result {
            Ok(Some(new)) => {
                cf.methods[i].attributes[code_at].data = new;
                probed += 1;
            }
            Ok(None) => {
                cf.methods[i].attributes[code_at].data = data;
                let spec = ProbeSpec {
                    method: super::MethodTarget { name: String::new(), descriptor: None },
                    points: vec![ProbePoint::Throw],
                    probe_id: id,
                    capture_args: false,
                    capture_this: false,
                    capture_return: false,
                    timestamp: false,
                };
                if probe_method(&mut cf, i, &spec).is_ok() {
                    probed += 1;
                }
            }
            Err(_) => cf.methods[i].attributes[code_at].data = data,
        }
    }
    Ok((cf.to_bytes()?, probed))
}

/// A digest of the class's name and its methods' names and descriptors, in order: two class files
/// with the same digest number their methods alike (method `i` is the same method in both), so
/// they can share probe ids. Stable within a process (not across processes or builds).
pub fn methods_digest(cf: &ClassFile) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cf.name()?.hash(&mut h);
    for m in &cf.methods {
        cf.pool.utf8(m.name)?.hash(&mut h);
        cf.pool.utf8(m.descriptor)?.hash(&mut h);
    }
    Ok(h.finish())
}
