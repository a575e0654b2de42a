//! Type inference over a method body, as the verifier does it: the types of every local slot
//! and stack entry before every instruction. Where the method has a `StackMapTable`, its frames
//! are taken as declared (as the type checker does) and code between them is simulated; without
//! one (class files before version 50), a dataflow fixpoint merges types through a [`Hierarchy`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::code::opcodes::*;
use crate::code::{Code, Frame, Insn, Label, MethodInfo, VType};
use crate::constant_pool::{Constant, ConstantPool};
use crate::descriptor::{parse_field, FieldType, MethodDescriptor};
use crate::error::{Error, Result};
use crate::hierarchy::{common_super_class, Hierarchy};

/// Types before one instruction: `locals` per slot (a long or double is followed by `Top`),
/// `stack` per value (a long or double is one entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub locals: Vec<VType>,
    pub stack: Vec<VType>,
}

impl State {
    /// Stack depth in slots.
    pub fn stack_slots(&self) -> usize {
        self.stack.iter().map(|t| if t.is_wide() { 2 } else { 1 }).sum()
    }

    /// The `StackMapTable` form: long/double once, trailing `Top`s dropped.
    pub fn to_frame(&self) -> Frame {
        let mut locals = Vec::with_capacity(self.locals.len());
        let mut i = 0;
        while i < self.locals.len() {
            let t = self.locals[i].clone();
            i += if t.is_wide() { 2 } else { 1 };
            locals.push(t);
        }
        while locals.last() == Some(&VType::Top) {
            locals.pop();
        }
        Frame { locals, stack: self.stack.clone() }
    }

    /// Expands a `StackMapTable` frame to slots, padded with `Top` to `max_locals`.
    pub fn from_frame(f: &Frame, max_locals: usize) -> State {
        let mut locals = Vec::with_capacity(max_locals);
        for t in &f.locals {
            let wide = t.is_wide();
            locals.push(t.clone());
            if wide {
                locals.push(VType::Top);
            }
        }
        if locals.len() < max_locals {
            locals.resize(max_locals, VType::Top);
        }
        State { locals, stack: f.stack.clone() }
    }
}

/// The inferred state before every entry of `code.insns` (`None`: unreachable).
pub struct Analysis {
    pub states: Vec<Option<State>>,
    /// The deepest operand stack, in slots.
    pub max_stack: usize,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::malformed("type inference", reason)
}

fn obj(name: &str) -> VType {
    VType::Object(Arc::from(name))
}

fn vtype(t: &FieldType) -> VType {
    crate::code::vtype_of(t)
}

impl Analysis {
    /// Infers the types, taking the method's `StackMapTable` frames as declared.
    pub fn run(
        code: &Code,
        pool: &ConstantPool,
        method: &MethodInfo<'_>,
        hierarchy: &dyn Hierarchy,
    ) -> Result<Analysis> {
        Self::run_with(code, pool, method, hierarchy, true)
    }

    /// Infers the types; without `use_frames` the `StackMapTable` is ignored and every type is
    /// computed by the fixpoint (what the tests compare with javac's frames).
    pub fn run_with(
        code: &Code,
        pool: &ConstantPool,
        method: &MethodInfo<'_>,
        hierarchy: &dyn Hierarchy,
        use_frames: bool,
    ) -> Result<Analysis> {
        let n = code.insns.len();
        let max_locals = code.max_locals as usize;
        let mut position = HashMap::with_capacity(code.label_count() as usize);
        for (i, insn) in code.insns.iter().enumerate() {
            if let Insn::Label(l) = insn {
                position.insert(*l, i);
            }
        }
        let pos = |l: Label| position.get(&l).copied().ok_or_else(|| bad(format!("label {} is not bound", l.0)));
        // The class each `new` creates, by the label the verifier names it with.
        let mut new_class: HashMap<Label, Arc<str>> = HashMap::new();
        let mut new_label = vec![None; n];
        for (i, insn) in code.insns.iter().enumerate() {
            if let Insn::Cp { op: NEW, index } = *insn {
                let label =
                    code.insns[..i].iter().rev().take_while(|x| matches!(x, Insn::Label(_))).find_map(|x| match x {
                        Insn::Label(l) => Some(*l),
                        _ => None,
                    });
                let label = label.unwrap_or(Label(u32::MAX - i as u32));
                new_class.insert(label, Arc::from(pool.class_name(index)?.as_ref()));
                new_label[i] = Some(label);
            }
        }
        let mut declared: Vec<Option<State>> = vec![None; n];
        if let Some(frames) = code.frames().filter(|_| use_frames) {
            for (l, f) in frames {
                declared[pos(*l)?] = Some(State::from_frame(f, max_locals));
            }
        }
        let handlers: Vec<(usize, usize, usize, VType)> = code
            .handlers
            .iter()
            .map(|h| {
                let t =
                    if h.catch_type == 0 { obj("java/lang/Throwable") } else { obj(&pool.class_name(h.catch_type)?) };
                Ok((pos(h.start)?, pos(h.end)?, pos(h.handler)?, t))
            })
            .collect::<Result<_>>()?;

        let mut states: Vec<Option<State>> = vec![None; n];
        let mut queued = vec![false; n];
        let mut work = Vec::new();
        let entry = State::from_frame(&method.initial_frame()?, max_locals);
        states[0] = Some(declared[0].clone().unwrap_or(entry));
        work.push(0usize);
        queued[0] = true;
        for (i, d) in declared.iter().enumerate() {
            if let Some(d) = d {
                states[i] = Some(d.clone());
                if !queued[i] {
                    queued[i] = true;
                    work.push(i);
                }
            }
        }
        let mut max_stack = 0;
        let mut rounds = 0usize;
        while let Some(i) = work.pop() {
            queued[i] = false;
            rounds += 1;
            if rounds > 64 * n + 1024 {
                return Err(bad("types do not converge"));
            }
            let before = states[i].clone().expect("queued states exist");
            max_stack = max_stack.max(before.stack_slots());
            let insn = &code.insns[i];
            let after = step(insn, &before, pool, method, &new_class, new_label[i])
                .map_err(|e| e.within(format!("instruction {i}")))?;
            max_stack = max_stack.max(after.stack_slots());
            let flow = |target: usize,
                        s: &State,
                        states: &mut Vec<Option<State>>,
                        work: &mut Vec<usize>,
                        queued: &mut Vec<bool>|
             -> Result<()> {
                if target >= n || declared[target].is_some() {
                    return Ok(());
                }
                let changed = match &states[target] {
                    None => {
                        states[target] = Some(s.clone());
                        true
                    }
                    Some(old) => {
                        let merged = merge(old, s, hierarchy)?;
                        let changed = merged != *old;
                        states[target] = Some(merged);
                        changed
                    }
                };
                if changed && !queued[target] {
                    queued[target] = true;
                    work.push(target);
                }
                Ok(())
            };
            if insn.opcode().is_some() {
                for &(s, e, h, ref t) in &handlers {
                    if (s..e).contains(&i) {
                        for locals in [&before.locals, &after.locals] {
                            let hs = State { locals: locals.clone(), stack: vec![t.clone()] };
                            flow(h, &hs, &mut states, &mut work, &mut queued)?;
                        }
                    }
                }
            }
            for t in insn.targets() {
                flow(pos(t)?, &after, &mut states, &mut work, &mut queued)?;
            }
            if !insn.ends_block() {
                flow(i + 1, &after, &mut states, &mut work, &mut queued)?;
            }
        }
        Ok(Analysis { states, max_stack })
    }

    /// The frame before instruction `i`, in `StackMapTable` form.
    pub fn frame_at(&self, i: usize) -> Option<Frame> {
        self.states.get(i)?.as_ref().map(State::to_frame)
    }
}

/// The merge of two states reaching one instruction.
fn merge(a: &State, b: &State, h: &dyn Hierarchy) -> Result<State> {
    if a.stack.len() != b.stack.len() {
        return Err(bad(format!("stack heights {} and {} meet", a.stack.len(), b.stack.len())));
    }
    let m = |x: &VType, y: &VType| -> VType {
        match (x, y) {
            _ if x == y => x.clone(),
            (VType::Null, VType::Object(_)) => y.clone(),
            (VType::Object(_), VType::Null) => x.clone(),
            (VType::Object(p), VType::Object(q)) => obj(&common_super_class(h, p, q)),
            _ => VType::Top,
        }
    };
    let locals = a.locals.iter().zip(&b.locals).map(|(x, y)| m(x, y)).collect();
    let stack = a.stack.iter().zip(&b.stack).map(|(x, y)| m(x, y)).collect();
    Ok(State { locals, stack })
}

fn pop(s: &mut State) -> Result<VType> {
    s.stack.pop().ok_or_else(|| bad("operand stack underflow"))
}

fn pop_n(s: &mut State, k: usize) -> Result<()> {
    for _ in 0..k {
        pop(s)?;
    }
    Ok(())
}

fn store(s: &mut State, index: usize, t: VType) -> Result<()> {
    let wide = t.is_wide();
    if index + usize::from(wide) >= s.locals.len() {
        return Err(bad(format!("local {index} beyond max_locals {}", s.locals.len())));
    }
    if index > 0 && s.locals[index - 1].is_wide() {
        s.locals[index - 1] = VType::Top;
    }
    s.locals[index] = t;
    if wide {
        s.locals[index + 1] = VType::Top;
    }
    Ok(())
}

fn load(s: &State, index: usize) -> Result<VType> {
    s.locals.get(index).cloned().ok_or_else(|| bad(format!("local {index} beyond max_locals {}", s.locals.len())))
}

/// The type `ldc` pushes.
fn constant_type(pool: &ConstantPool, index: u16) -> Result<VType> {
    Ok(match pool.get(index)? {
        Constant::Integer(_) => VType::Integer,
        Constant::Float(_) => VType::Float,
        Constant::Long(_) => VType::Long,
        Constant::Double(_) => VType::Double,
        Constant::String(_) => obj("java/lang/String"),
        Constant::Class(_) => obj("java/lang/Class"),
        Constant::MethodType(_) => obj("java/lang/invoke/MethodType"),
        Constant::MethodHandle { .. } => obj("java/lang/invoke/MethodHandle"),
        Constant::Dynamic { .. } => vtype(&parse_field(&pool.dynamic(index)?.2)?),
        _ => return Err(bad(format!("ldc of constant {index}"))),
    })
}

fn element_of(array: &VType) -> VType {
    match array {
        VType::Object(n) if n.starts_with('[') => match parse_field(&n[1..]) {
            Ok(t) => vtype(&t),
            Err(_) => VType::Top,
        },
        VType::Null => VType::Null,
        _ => VType::Top,
    }
}

/// The state after `insn` runs from `s`.
fn step(
    insn: &Insn,
    before: &State,
    pool: &ConstantPool,
    method: &MethodInfo<'_>,
    new_class: &HashMap<Label, Arc<str>>,
    new_label: Option<Label>,
) -> Result<State> {
    let mut s = before.clone();
    let push = |s: &mut State, t: VType| s.stack.push(t);
    match insn {
        Insn::Label(_) => {}
        Insn::Bipush(_) | Insn::Sipush(_) => push(&mut s, VType::Integer),
        Insn::Ldc { index, .. } => {
            let t = constant_type(pool, *index)?;
            push(&mut s, t);
        }
        Insn::Local { op, index, .. } => {
            let i = *index as usize;
            match *op {
                ILOAD => push(&mut s, VType::Integer),
                LLOAD => push(&mut s, VType::Long),
                FLOAD => push(&mut s, VType::Float),
                DLOAD => push(&mut s, VType::Double),
                ALOAD => {
                    let t = load(&s, i)?;
                    push(&mut s, t);
                }
                ISTORE..=ASTORE => {
                    let t = pop(&mut s)?;
                    store(&mut s, i, t)?;
                }
                _ => return Err(Error::refused("type inference", "jsr/ret subroutines are not supported")),
            }
        }
        Insn::Iinc { .. } => {}
        Insn::Branch { op, .. } => match *op {
            IFEQ..=IFLE | IFNULL | IFNONNULL => pop_n(&mut s, 1)?,
            IF_ICMPEQ..=IF_ACMPNE => pop_n(&mut s, 2)?,
            GOTO | GOTO_W => {}
            _ => return Err(Error::refused("type inference", "jsr/ret subroutines are not supported")),
        },
        Insn::TableSwitch { .. } | Insn::LookupSwitch { .. } => pop_n(&mut s, 1)?,
        Insn::Cp { op, index } => {
            let index = *index;
            match *op {
                GETSTATIC | GETFIELD => {
                    if *op == GETFIELD {
                        pop(&mut s)?;
                    }
                    let t = parse_field(&pool.member_ref(index)?.descriptor)?;
                    push(&mut s, vtype(&t));
                }
                PUTSTATIC => pop_n(&mut s, 1)?,
                PUTFIELD => pop_n(&mut s, 2)?,
                INVOKEVIRTUAL | INVOKESPECIAL | INVOKESTATIC => {
                    let r = pool.member_ref(index)?;
                    let d = MethodDescriptor::parse(&r.descriptor)?;
                    pop_n(&mut s, d.params.len())?;
                    if *op != INVOKESTATIC {
                        let receiver = pop(&mut s)?;
                        if *op == INVOKESPECIAL && r.name == "<init>" {
                            let init = match &receiver {
                                VType::UninitializedThis => obj(method.class),
                                VType::Uninitialized(l) => {
                                    obj(new_class.get(l).ok_or_else(|| bad("constructor call on an unknown new"))?)
                                }
                                _ => return Err(bad("constructor call on an initialized object")),
                            };
                            for t in s.locals.iter_mut().chain(s.stack.iter_mut()) {
                                if *t == receiver {
                                    *t = init.clone();
                                }
                            }
                        }
                    }
                    if d.ret != FieldType::Void {
                        push(&mut s, vtype(&d.ret));
                    }
                }
                NEW => push(&mut s, VType::Uninitialized(new_label.ok_or_else(|| bad("new without a label"))?)),
                ANEWARRAY => {
                    pop(&mut s)?;
                    let c = pool.class_name(index)?;
                    push(&mut s, obj(&if c.starts_with('[') { format!("[{c}") } else { format!("[L{c};") }));
                }
                CHECKCAST => {
                    pop(&mut s)?;
                    push(&mut s, obj(&pool.class_name(index)?));
                }
                INSTANCEOF => {
                    pop(&mut s)?;
                    push(&mut s, VType::Integer);
                }
                other => return Err(bad(format!("opcode {other} with a constant operand"))),
            }
        }
        Insn::InvokeInterface { index, .. } => {
            let d = MethodDescriptor::parse(&pool.member_ref(*index)?.descriptor)?;
            pop_n(&mut s, d.params.len() + 1)?;
            if d.ret != FieldType::Void {
                push(&mut s, vtype(&d.ret));
            }
        }
        Insn::InvokeDynamic { index } => {
            let d = MethodDescriptor::parse(&pool.dynamic(*index)?.2)?;
            pop_n(&mut s, d.params.len())?;
            if d.ret != FieldType::Void {
                push(&mut s, vtype(&d.ret));
            }
        }
        Insn::MultiANewArray { index, dims } => {
            pop_n(&mut s, *dims as usize)?;
            push(&mut s, obj(&pool.class_name(*index)?));
        }
        Insn::NewArray(t) => {
            pop(&mut s)?;
            let d = match t {
                4 => "[Z",
                5 => "[C",
                6 => "[F",
                7 => "[D",
                8 => "[B",
                9 => "[S",
                10 => "[I",
                11 => "[J",
                _ => return Err(bad(format!("newarray of type {t}"))),
            };
            push(&mut s, obj(d));
        }
        Insn::Op(op) => simple(*op, &mut s)?,
    }
    Ok(s)
}

/// Instructions without operands.
fn simple(op: u8, s: &mut State) -> Result<()> {
    let push = |s: &mut State, t: VType| s.stack.push(t);
    let kind = |k: u8| [VType::Integer, VType::Long, VType::Float, VType::Double][k as usize % 4].clone();
    match op {
        NOP => {}
        ACONST_NULL => push(s, VType::Null),
        ICONST_M1..=ICONST_5 => push(s, VType::Integer),
        LCONST_0 | LCONST_1 => push(s, VType::Long),
        FCONST_0..=FCONST_2 => push(s, VType::Float),
        DCONST_0 | DCONST_1 => push(s, VType::Double),
        ILOAD_0..=ALOAD_3 => {
            let k = (op - ILOAD_0) / 4;
            let i = ((op - ILOAD_0) % 4) as usize;
            let t = if k == 4 { load(s, i)? } else { kind(k) };
            push(s, t);
        }
        IALOAD..=SALOAD => {
            pop(s)?;
            let array = pop(s)?;
            push(
                s,
                match op {
                    LALOAD => VType::Long,
                    FALOAD => VType::Float,
                    DALOAD => VType::Double,
                    AALOAD => element_of(&array),
                    _ => VType::Integer,
                },
            );
        }
        ISTORE_0..=ASTORE_3 => {
            let i = ((op - ISTORE_0) % 4) as usize;
            let t = pop(s)?;
            store(s, i, t)?;
        }
        IASTORE..=SASTORE => pop_n(s, 3)?,
        POP => pop_n(s, 1)?,
        POP2 => {
            if !pop(s)?.is_wide() {
                pop(s)?;
            }
        }
        DUP => {
            let t = s.stack.last().cloned().ok_or_else(|| bad("operand stack underflow"))?;
            push(s, t);
        }
        DUP_X1 => {
            let v1 = pop(s)?;
            let v2 = pop(s)?;
            s.stack.extend([v1.clone(), v2, v1]);
        }
        DUP_X2 => {
            let v1 = pop(s)?;
            let v2 = pop(s)?;
            if v2.is_wide() {
                s.stack.extend([v1.clone(), v2, v1]);
            } else {
                let v3 = pop(s)?;
                s.stack.extend([v1.clone(), v3, v2, v1]);
            }
        }
        DUP2 => {
            let v1 = pop(s)?;
            if v1.is_wide() {
                s.stack.extend([v1.clone(), v1]);
            } else {
                let v2 = pop(s)?;
                s.stack.extend([v2.clone(), v1.clone(), v2, v1]);
            }
        }
        DUP2_X1 => {
            let v1 = pop(s)?;
            if v1.is_wide() {
                let v2 = pop(s)?;
                s.stack.extend([v1.clone(), v2, v1]);
            } else {
                let v2 = pop(s)?;
                let v3 = pop(s)?;
                s.stack.extend([v2.clone(), v1.clone(), v3, v2, v1]);
            }
        }
        DUP2_X2 => {
            let v1 = pop(s)?;
            let v2 = pop(s)?;
            match (v1.is_wide(), v2.is_wide()) {
                (true, true) => s.stack.extend([v1.clone(), v2, v1]),
                (true, false) => {
                    let v3 = pop(s)?;
                    s.stack.extend([v1.clone(), v3, v2, v1]);
                }
                (false, _) => {
                    let v3 = pop(s)?;
                    if v3.is_wide() {
                        s.stack.extend([v2.clone(), v1.clone(), v3, v2, v1]);
                    } else {
                        let v4 = pop(s)?;
                        s.stack.extend([v2.clone(), v1.clone(), v4, v3, v2, v1]);
                    }
                }
            }
        }
        SWAP => {
            let v1 = pop(s)?;
            let v2 = pop(s)?;
            s.stack.extend([v1, v2]);
        }
        IADD..=DREM => {
            pop_n(s, 2)?;
            push(s, kind(op - IADD));
        }
        INEG..=DNEG => {
            pop(s)?;
            push(s, kind(op - INEG));
        }
        ISHL..=LUSHR | IAND..=LXOR => {
            pop_n(s, 2)?;
            push(s, if (op - ISHL) % 2 == 0 { VType::Integer } else { VType::Long });
        }
        I2L..=I2S => {
            pop(s)?;
            push(
                s,
                match op {
                    I2L | F2L | D2L => VType::Long,
                    I2F | L2F | D2F => VType::Float,
                    I2D | L2D | F2D => VType::Double,
                    _ => VType::Integer,
                },
            );
        }
        LCMP..=DCMPG => {
            pop_n(s, 2)?;
            push(s, VType::Integer);
        }
        IRETURN..=ARETURN | ATHROW | MONITORENTER | MONITOREXIT => pop_n(s, 1)?,
        RETURN => {}
        ARRAYLENGTH => {
            pop(s)?;
            push(s, VType::Integer);
        }
        other => return Err(bad(format!("unexpected opcode {other}"))),
    }
    Ok(())
}
