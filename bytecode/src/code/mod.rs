//! The `Code` attribute: decoded into labelled instructions and re-encoded with every offset
//! relocated (branches with `goto_w` widening, switch padding, exception table, `StackMapTable`,
//! `LineNumberTable`, `LocalVariable(Type)Table`, type annotations).

mod annotations;
mod insn;
pub mod opcodes;
pub mod stackmap;

use std::sync::Arc;

pub use annotations::{TypeAnnotation, TypeAnnotationTarget};
pub use insn::{Insn, Label, ValueKind};
pub use stackmap::{Frame, VType};

use crate::bytes::{Reader, Writer};
use crate::classfile::{parse_attributes, write_attributes, Attribute, ACC_STATIC};
use crate::constant_pool::ConstantPool;
use crate::descriptor::{FieldType, MethodDescriptor};
use crate::error::{Error, Result};
use opcodes::*;

/// Which method a `Code` belongs to: enough to derive its implicit first frame.
#[derive(Debug, Clone, Copy)]
pub struct MethodInfo<'a> {
    /// Internal name of the declaring class.
    pub class: &'a str,
    pub name: &'a str,
    pub descriptor: &'a str,
    pub access: u16,
}

impl MethodInfo<'_> {
    pub fn is_static(&self) -> bool {
        self.access & ACC_STATIC != 0
    }
    pub fn is_constructor(&self) -> bool {
        self.name == "<init>"
    }
    /// The frame on entry: `this` (uninitialized in a constructor) and the parameters.
    pub fn initial_frame(&self) -> Result<Frame> {
        let d = MethodDescriptor::parse(self.descriptor)?;
        let mut locals = Vec::with_capacity(d.params.len() + 1);
        if !self.is_static() {
            locals.push(if self.is_constructor() && self.class != "java/lang/Object" {
                VType::UninitializedThis
            } else {
                VType::Object(Arc::from(self.class))
            });
        }
        locals.extend(d.params.iter().map(vtype_of));
        Ok(Frame { locals, stack: Vec::new() })
    }
}

/// The verification type of a value of a field type.
pub fn vtype_of(t: &FieldType) -> VType {
    match t {
        FieldType::Byte | FieldType::Char | FieldType::Short | FieldType::Boolean | FieldType::Int => VType::Integer,
        FieldType::Float => VType::Float,
        FieldType::Long => VType::Long,
        FieldType::Double => VType::Double,
        FieldType::Object(n) => VType::Object(Arc::from(n.as_str())),
        FieldType::Array(d) => VType::Object(Arc::from(d.as_str())),
        FieldType::Void => VType::Top,
    }
}

/// An exception-table entry. `catch_type` is a class pool index, 0 for "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub start: Label,
    pub end: Label,
    pub handler: Label,
    pub catch_type: u16,
}

/// A `LocalVariableTable` or `LocalVariableTypeTable` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVar {
    pub start: Label,
    pub end: Label,
    pub name: u16,
    /// Descriptor (or signature, in the type table) pool index.
    pub descriptor: u16,
    pub index: u16,
}

/// An attribute of `Code`, decoded when it carries code offsets.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeAttribute {
    StackMapTable(Vec<(Label, Frame)>),
    LineNumbers(Vec<(Label, u16)>),
    LocalVariables(Vec<LocalVar>),
    LocalVariableTypes(Vec<LocalVar>),
    TypeAnnotations(Vec<TypeAnnotation>),
    /// An attribute without code offsets (or unknown), kept as is.
    Other(Vec<u8>),
}

/// A decoded `Code` attribute.
#[derive(Debug, Clone)]
pub struct Code {
    pub max_stack: u16,
    pub max_locals: u16,
    pub insns: Vec<Insn>,
    pub handlers: Vec<Handler>,
    /// With their name pool index, in class-file order.
    pub attributes: Vec<(u16, CodeAttribute)>,
    next_label: u32,
}

/// Where each instruction landed after encoding.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Offset of every entry of `insns` (a label's offset is that of the next instruction).
    pub offsets: Vec<u32>,
    pub code_length: u32,
    /// Label id → offset.
    pub labels: Vec<u32>,
}

impl Code {
    /// Decodes a `Code` attribute body.
    pub fn decode(data: &[u8], pool: &ConstantPool, method: &MethodInfo<'_>) -> Result<Code> {
        let mut r = Reader::new(data, "Code attribute");
        let max_stack = r.u16()?;
        let max_locals = r.u16()?;
        let code_length = r.u32()? as usize;
        if code_length == 0 || code_length > 65535 {
            return Err(Error::malformed("Code attribute", format!("code length {code_length} outside 1..=65535")));
        }
        let bytes = r.bytes(code_length)?;
        let mut labels = LabelMap::new(code_length);
        let decoded = decode_instructions(bytes, &mut labels)?;

        let n = r.u16()?;
        let mut handlers = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let (s, e, h, t) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
            if s >= e {
                return Err(Error::malformed("exception table", format!("empty range {s}..{e}")));
            }
            handlers.push(Handler {
                start: labels.at(s as u32)?,
                end: labels.at(e as u32)?,
                handler: labels.at(h as u32)?,
                catch_type: t,
            });
        }
        let raw = parse_attributes(&mut r)?;
        r.finish()?;

        let mut attributes = Vec::with_capacity(raw.len());
        for a in raw {
            let name = pool.utf8(a.name)?;
            let ctx = |e: Error| e.within(format!("Code attribute {name}"));
            let decoded = match name.as_ref() {
                "StackMapTable" => {
                    let initial = method.initial_frame()?;
                    CodeAttribute::StackMapTable(
                        stackmap::decode(&a.data, pool, &initial, &mut |o| labels.at(o)).map_err(ctx)?,
                    )
                }
                "LineNumberTable" => CodeAttribute::LineNumbers(decode_lines(&a.data, &mut labels).map_err(ctx)?),
                "LocalVariableTable" => {
                    CodeAttribute::LocalVariables(decode_local_vars(&a.data, &mut labels).map_err(ctx)?)
                }
                "LocalVariableTypeTable" => {
                    CodeAttribute::LocalVariableTypes(decode_local_vars(&a.data, &mut labels).map_err(ctx)?)
                }
                "RuntimeVisibleTypeAnnotations" | "RuntimeInvisibleTypeAnnotations" => {
                    CodeAttribute::TypeAnnotations(annotations::decode(&a.data, &mut |o| labels.at(o)).map_err(ctx)?)
                }
                _ => CodeAttribute::Other(a.data),
            };
            attributes.push((a.name, decoded));
        }

        let mut insns = Vec::with_capacity(decoded.len() + labels.count as usize);
        for (offset, insn) in decoded {
            if let Some(l) = labels.get(offset) {
                insns.push(Insn::Label(l));
            }
            insns.push(insn);
        }
        if let Some(l) = labels.get(code_length as u32) {
            insns.push(Insn::Label(l));
        }
        Ok(Code { max_stack, max_locals, insns, handlers, attributes, next_label: labels.count })
    }

    /// An empty body with no attributes, for a method generated from scratch.
    pub fn new(max_stack: u16, max_locals: u16) -> Code {
        Code { max_stack, max_locals, insns: Vec::new(), handlers: Vec::new(), attributes: Vec::new(), next_label: 0 }
    }

    /// A fresh label, not yet bound.
    pub fn new_label(&mut self) -> Label {
        self.next_label += 1;
        Label(self.next_label - 1)
    }

    /// Number of labels ever created (label ids are below this).
    pub fn label_count(&self) -> u32 {
        self.next_label
    }

    /// The decoded `StackMapTable`, if the method has one.
    pub fn frames(&self) -> Option<&Vec<(Label, Frame)>> {
        self.attributes.iter().find_map(|(_, a)| match a {
            CodeAttribute::StackMapTable(f) => Some(f),
            _ => None,
        })
    }
    pub fn frames_mut(&mut self) -> Option<&mut Vec<(Label, Frame)>> {
        self.attributes.iter_mut().find_map(|(_, a)| match a {
            CodeAttribute::StackMapTable(f) => Some(f),
            _ => None,
        })
    }
    /// The `StackMapTable`, created empty when absent.
    pub fn frames_or_insert(&mut self, pool: &mut ConstantPool) -> Result<&mut Vec<(Label, Frame)>> {
        if self.frames().is_none() {
            let name = pool.add_utf8("StackMapTable")?;
            self.attributes.push((name, CodeAttribute::StackMapTable(Vec::new())));
        }
        Ok(self.frames_mut().expect("just inserted"))
    }

    /// Inserts an exception handler at `position` of the table (earlier entries win), keeping
    /// type annotations on catch clauses pointing at their own entries.
    pub fn insert_handler(&mut self, position: usize, h: Handler) {
        self.handlers.insert(position, h);
        for (_, a) in &mut self.attributes {
            if let CodeAttribute::TypeAnnotations(list) = a {
                for t in list {
                    if let TypeAnnotationTarget::Catch(i) = &mut t.target {
                        if *i as usize >= position {
                            *i += 1;
                        }
                    }
                }
            }
        }
    }

    /// Computes the offset of every instruction, widening branches that overflow 16 bits.
    /// Returns the layout and, per instruction, whether its branch is widened.
    fn layout(&self) -> Result<(Layout, Vec<bool>)> {
        let mut widened = vec![false; self.insns.len()];
        loop {
            let mut offsets = Vec::with_capacity(self.insns.len());
            let mut labels = vec![u32::MAX; self.next_label as usize];
            let mut pc: u32 = 0;
            for (i, insn) in self.insns.iter().enumerate() {
                offsets.push(pc);
                if let Insn::Label(l) = insn {
                    if labels[l.0 as usize] != u32::MAX {
                        return Err(Error::malformed("code", format!("label {} bound twice", l.0)));
                    }
                    labels[l.0 as usize] = pc;
                }
                pc += size_of(insn, pc, widened[i]);
            }
            if pc > 65535 {
                return Err(Error::limit("code", format!("{pc} bytes of code exceed the 65535-byte limit")));
            }
            let mut changed = false;
            for (i, insn) in self.insns.iter().enumerate() {
                if let Insn::Branch { op, target } = insn {
                    let t = labels[target.0 as usize];
                    if t == u32::MAX {
                        return Err(Error::malformed("code", format!("branch to unbound label {}", target.0)));
                    }
                    let delta = t as i64 - offsets[i] as i64;
                    if !widened[i] && !matches!(*op, GOTO_W | JSR_W) && i16::try_from(delta).is_err() {
                        widened[i] = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                return Ok((Layout { offsets, code_length: pc, labels }, widened));
            }
        }
    }

    /// Encodes the `Code` attribute body. New pool entries (e.g. frame class names) are added to
    /// `pool`.
    pub fn encode(&self, pool: &mut ConstantPool, method: &MethodInfo<'_>) -> Result<Vec<u8>> {
        let (layout, widened) = self.layout()?;
        let offset_of = |l: Label| layout.labels.get(l.0 as usize).copied().unwrap_or(u32::MAX);
        let mut code = Writer::with_capacity(layout.code_length as usize);
        // (offset after an inverted branch, index of the widened conditional)
        let mut extra_frames: Vec<(u32, usize)> = Vec::new();
        for (i, insn) in self.insns.iter().enumerate() {
            let pc = layout.offsets[i];
            debug_assert_eq!(code.len() as u32, pc);
            if widened[i] {
                if let Insn::Branch { op, target } = insn {
                    let t = offset_of(*target) as i64;
                    match *op {
                        GOTO | JSR => {
                            code.u8(if *op == GOTO { GOTO_W } else { JSR_W });
                            code.u32((t - pc as i64) as i32 as u32);
                        }
                        _ => {
                            let inv = invert_condition(*op)
                                .ok_or_else(|| Error::malformed("code", format!("cannot widen opcode {op}")))?;
                            code.u8(inv);
                            code.u16(8);
                            code.u8(GOTO_W);
                            code.u32((t - (pc as i64 + 3)) as i32 as u32);
                            extra_frames.push((pc + 8, i));
                        }
                    }
                    continue;
                }
            }
            encode_insn(&mut code, insn, pc, &offset_of)?;
        }

        let mut w = Writer::with_capacity(layout.code_length as usize + 64);
        w.u16(self.max_stack);
        w.u16(self.max_locals);
        w.u32(layout.code_length);
        w.bytes(&code.buf);
        w.len16(self.handlers.len(), "exception table")?;
        for h in &self.handlers {
            let (s, e, hd) = (offset_of(h.start), offset_of(h.end), offset_of(h.handler));
            if s == u32::MAX || e == u32::MAX || hd == u32::MAX {
                return Err(Error::malformed("exception table", "handler refers to an unbound label"));
            }
            if s >= e {
                return Err(Error::malformed("exception table", format!("empty range {s}..{e}")));
            }
            w.u16(s as u16);
            w.u16(e as u16);
            w.u16(hd as u16);
            w.u16(h.catch_type);
        }
        let mut attrs = Vec::with_capacity(self.attributes.len());
        for (name, a) in &self.attributes {
            let data = match a {
                CodeAttribute::StackMapTable(frames) => {
                    let mut sorted: Vec<(u32, &Frame)> = frames.iter().map(|(l, f)| (offset_of(*l), f)).collect();
                    // A widened conditional (`if!cond +8; goto_w target`) makes the instruction
                    // after it a branch target: it needs the frame the condition leaves.
                    let widened_frames: Vec<(u32, Frame)> = if extra_frames.is_empty() {
                        Vec::new()
                    } else {
                        let analysis =
                            crate::analysis::Analysis::run(self, pool, method, &crate::hierarchy::ObjectHierarchy)?;
                        extra_frames
                            .iter()
                            .map(|&(offset, i)| {
                                let mut state = analysis.states[i]
                                    .clone()
                                    .ok_or_else(|| Error::malformed("code", "unreachable widened branch"))?;
                                let popped = match self.insns[i].opcode() {
                                    Some(IF_ICMPEQ..=IF_ACMPNE) => 2,
                                    _ => 1,
                                };
                                state.stack.truncate(state.stack.len().saturating_sub(popped));
                                Ok((offset, state.to_frame()))
                            })
                            .collect::<Result<_>>()?
                    };
                    sorted.extend(widened_frames.iter().map(|(o, f)| (*o, f)));
                    sorted.sort_by_key(|(o, _)| *o);
                    sorted.dedup_by_key(|(o, _)| *o);
                    if sorted.iter().any(|(o, _)| *o >= layout.code_length) {
                        return Err(Error::malformed(
                            "StackMapTable",
                            "frame at an unbound label or past the end of the code",
                        ));
                    }
                    stackmap::encode(&sorted, &method.initial_frame()?, pool, &|l| offset_of(l))?
                }
                CodeAttribute::LineNumbers(lines) => {
                    let mut v = Writer::with_capacity(2 + lines.len() * 4);
                    let live: Vec<_> = lines.iter().filter(|(l, _)| offset_of(*l) < layout.code_length).collect();
                    v.len16(live.len(), "LineNumberTable")?;
                    for (l, line) in live {
                        v.u16(offset_of(*l) as u16);
                        v.u16(*line);
                    }
                    v.into_inner()
                }
                CodeAttribute::LocalVariables(vars) | CodeAttribute::LocalVariableTypes(vars) => {
                    let mut v = Writer::with_capacity(2 + vars.len() * 10);
                    v.len16(vars.len(), "LocalVariableTable")?;
                    for var in vars {
                        let (s, e) = (offset_of(var.start), offset_of(var.end));
                        if s == u32::MAX || e == u32::MAX || e < s {
                            return Err(Error::malformed("LocalVariableTable", "range refers to an unbound label"));
                        }
                        v.u16(s as u16);
                        v.u16((e - s) as u16);
                        v.u16(var.name);
                        v.u16(var.descriptor);
                        v.u16(var.index);
                    }
                    v.into_inner()
                }
                CodeAttribute::TypeAnnotations(list) => annotations::encode(list, &offset_of)?,
                CodeAttribute::Other(data) => data.clone(),
            };
            attrs.push(Attribute { name: *name, data });
        }
        write_attributes(&mut w, &attrs)?;
        Ok(w.into_inner())
    }

    /// Offsets of every instruction and label, as [`Code::encode`] would lay them out.
    pub fn compute_layout(&self) -> Result<Layout> {
        self.layout().map(|(l, _)| l)
    }
}

/// Visits `(offset, opcode)` of every instruction of raw code bytes, without decoding operands,
/// until `visit` returns false.
pub fn scan(code: &[u8], mut visit: impl FnMut(u32, u8) -> bool) -> Result<()> {
    let mut r = Reader::new(code, "code");
    while r.remaining() > 0 {
        let pc = r.pos() as u32;
        if !visit(pc, code[pc as usize]) {
            return Ok(());
        }
        skip_insn(&mut r, pc)?;
    }
    Ok(())
}

/// Encodes a branch-free instruction sequence placed at `pc` (e.g. a handler appended to code).
pub fn encode_linear(insns: &[Insn], pc: u32) -> Result<Vec<u8>> {
    let mut w = Writer::default();
    for insn in insns {
        if !insn.targets().is_empty() {
            return Err(Error::malformed("code", "a linear sequence cannot branch"));
        }
        let at = pc + w.len() as u32;
        encode_insn(&mut w, insn, at, &|_| u32::MAX)?;
    }
    Ok(w.into_inner())
}

/// Offsets → labels while decoding; validates that targets are instruction boundaries.
struct LabelMap {
    by_offset: Vec<u32>,
    starts: Vec<bool>,
    count: u32,
}

impl LabelMap {
    fn new(code_length: usize) -> Self {
        Self { by_offset: vec![u32::MAX; code_length + 1], starts: vec![false; code_length + 1], count: 0 }
    }
    fn at(&mut self, offset: u32) -> Result<Label> {
        let o = offset as usize;
        if o >= self.by_offset.len() || !self.starts[o] {
            return Err(Error::malformed("code", format!("offset {offset} is not the start of an instruction")));
        }
        if self.by_offset[o] == u32::MAX {
            self.by_offset[o] = self.count;
            self.count += 1;
        }
        Ok(Label(self.by_offset[o]))
    }
    fn get(&self, offset: u32) -> Option<Label> {
        self.by_offset.get(offset as usize).filter(|&&l| l != u32::MAX).map(|&l| Label(l))
    }
}

fn decode_instructions(code: &[u8], labels: &mut LabelMap) -> Result<Vec<(u32, Insn)>> {
    // First pass: instruction boundaries, so branch targets can be checked in the second.
    let mut r = Reader::new(code, "code");
    let mut starts = Vec::with_capacity(code.len() / 2);
    while r.remaining() > 0 {
        let pc = r.pos() as u32;
        labels.starts[pc as usize] = true;
        starts.push(pc);
        skip_insn(&mut r, pc)?;
    }
    labels.starts[code.len()] = true;
    let mut out = Vec::with_capacity(starts.len());
    let mut r = Reader::new(code, "code");
    for &pc in &starts {
        r.seek(pc as usize);
        out.push((pc, read_insn(&mut r, pc, labels)?));
    }
    Ok(out)
}

fn branch_target(pc: u32, delta: i64, labels: &mut LabelMap) -> Result<Label> {
    let t = pc as i64 + delta;
    if t < 0 || t >= labels.starts.len() as i64 - 1 {
        return Err(Error::malformed("code", format!("branch at {pc} to {t}, outside the code")));
    }
    labels.at(t as u32)
}

fn skip_insn(r: &mut Reader<'_>, pc: u32) -> Result<()> {
    let op = r.u8()?;
    let n = match op {
        BIPUSH | LDC | NEWARRAY => 1,
        ILOAD..=ALOAD | ISTORE..=ASTORE | RET => 1,
        SIPUSH
        | LDC_W
        | LDC2_W
        | IINC
        | IFEQ..=JSR
        | GETSTATIC..=INVOKESTATIC
        | NEW
        | ANEWARRAY
        | CHECKCAST
        | INSTANCEOF
        | IFNULL
        | IFNONNULL => 2,
        MULTIANEWARRAY => 3,
        INVOKEINTERFACE | INVOKEDYNAMIC | GOTO_W | JSR_W => 4,
        WIDE => {
            let op2 = r.u8()?;
            match op2 {
                IINC => 4,
                ILOAD..=ALOAD | ISTORE..=ASTORE | RET => 2,
                _ => return Err(Error::malformed("code", format!("wide applied to opcode {op2} at {pc}"))),
            }
        }
        TABLESWITCH | LOOKUPSWITCH => {
            let pad = (4 - (pc + 1) % 4) % 4;
            r.skip(pad as usize + 4)?;
            if op == TABLESWITCH {
                let low = r.i32()?;
                let high = r.i32()?;
                if high < low {
                    return Err(Error::malformed("code", format!("tableswitch at {pc} with high {high} < low {low}")));
                }
                (high as i64 - low as i64 + 1) as usize * 4
            } else {
                let n = r.i32()?;
                if n < 0 {
                    return Err(Error::malformed("code", format!("lookupswitch at {pc} with {n} pairs")));
                }
                n as usize * 8
            }
        }
        _ if mnemonic(op).is_some() => 0,
        _ => return Err(Error::malformed("code", format!("undefined opcode {op} at {pc}"))),
    };
    r.skip(n)
}

fn read_insn(r: &mut Reader<'_>, pc: u32, labels: &mut LabelMap) -> Result<Insn> {
    let op = r.u8()?;
    Ok(match op {
        BIPUSH => Insn::Bipush(r.i8()?),
        SIPUSH => Insn::Sipush(r.i16()?),
        LDC => Insn::Ldc { op, index: r.u8()? as u16 },
        LDC_W | LDC2_W => Insn::Ldc { op, index: r.u16()? },
        ILOAD..=ALOAD | ISTORE..=ASTORE | RET => Insn::Local { op, index: r.u8()? as u16, wide: false },
        IINC => Insn::Iinc { index: r.u8()? as u16, delta: r.i8()? as i16, wide: false },
        IFEQ..=JSR | IFNULL | IFNONNULL => Insn::Branch { op, target: branch_target(pc, r.i16()? as i64, labels)? },
        GOTO_W | JSR_W => Insn::Branch { op, target: branch_target(pc, r.i32()? as i64, labels)? },
        TABLESWITCH | LOOKUPSWITCH => {
            r.skip(((4 - (pc + 1) % 4) % 4) as usize)?;
            let default = branch_target(pc, r.i32()? as i64, labels)?;
            if op == TABLESWITCH {
                let low = r.i32()?;
                let high = r.i32()?;
                let mut targets = Vec::with_capacity((high as i64 - low as i64 + 1) as usize);
                for _ in low..=high {
                    targets.push(branch_target(pc, r.i32()? as i64, labels)?);
                }
                Insn::TableSwitch { default, low, targets }
            } else {
                let n = r.i32()?;
                let mut pairs = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let k = r.i32()?;
                    pairs.push((k, branch_target(pc, r.i32()? as i64, labels)?));
                }
                Insn::LookupSwitch { default, pairs }
            }
        }
        GETSTATIC..=INVOKESTATIC | NEW | ANEWARRAY | CHECKCAST | INSTANCEOF => Insn::Cp { op, index: r.u16()? },
        INVOKEINTERFACE => {
            let index = r.u16()?;
            let count = r.u8()?;
            r.u8()?;
            Insn::InvokeInterface { index, count }
        }
        INVOKEDYNAMIC => {
            let index = r.u16()?;
            r.u16()?;
            Insn::InvokeDynamic { index }
        }
        MULTIANEWARRAY => Insn::MultiANewArray { index: r.u16()?, dims: r.u8()? },
        NEWARRAY => Insn::NewArray(r.u8()?),
        WIDE => {
            let op2 = r.u8()?;
            if op2 == IINC {
                Insn::Iinc { index: r.u16()?, delta: r.i16()?, wide: true }
            } else {
                Insn::Local { op: op2, index: r.u16()?, wide: true }
            }
        }
        _ => Insn::Op(op),
    })
}

/// Encoded size of `insn` at `pc` (`widened`: a branch that needs 32-bit reach).
fn size_of(insn: &Insn, pc: u32, widened: bool) -> u32 {
    match insn {
        Insn::Label(_) => 0,
        Insn::Op(_) => 1,
        Insn::Bipush(_) | Insn::NewArray(_) => 2,
        Insn::Sipush(_) | Insn::Cp { .. } => 3,
        Insn::Ldc { op, index } => {
            if *op == LDC && *index <= 0xFF {
                2
            } else {
                3
            }
        }
        Insn::Local { index, wide, .. } => {
            if *wide || *index > 0xFF {
                4
            } else {
                2
            }
        }
        Insn::Iinc { index, delta, wide } => {
            if *wide || *index > 0xFF || i8::try_from(*delta).is_err() {
                6
            } else {
                3
            }
        }
        Insn::Branch { op, .. } => match (*op, widened) {
            (GOTO_W | JSR_W, _) => 5,
            (GOTO | JSR, true) => 5,
            (_, true) => 8,
            _ => 3,
        },
        Insn::TableSwitch { targets, .. } => 1 + (4 - (pc + 1) % 4) % 4 + 12 + 4 * targets.len() as u32,
        Insn::LookupSwitch { pairs, .. } => 1 + (4 - (pc + 1) % 4) % 4 + 8 + 8 * pairs.len() as u32,
        Insn::InvokeInterface { .. } | Insn::InvokeDynamic { .. } => 5,
        Insn::MultiANewArray { .. } => 4,
    }
}

fn encode_insn(w: &mut Writer, insn: &Insn, pc: u32, offset_of: &dyn Fn(Label) -> u32) -> Result<()> {
    let rel = |l: Label| -> Result<i64> {
        let t = offset_of(l);
        if t == u32::MAX {
            return Err(Error::malformed("code", format!("jump to unbound label {}", l.0)));
        }
        Ok(t as i64 - pc as i64)
    };
    match insn {
        Insn::Label(_) => {}
        Insn::Op(op) => w.u8(*op),
        Insn::Bipush(v) => {
            w.u8(BIPUSH);
            w.u8(*v as u8);
        }
        Insn::Sipush(v) => {
            w.u8(SIPUSH);
            w.u16(*v as u16);
        }
        Insn::Ldc { op, index } => {
            if *op == LDC && *index <= 0xFF {
                w.u8(LDC);
                w.u8(*index as u8);
            } else {
                w.u8(if *op == LDC2_W { LDC2_W } else { LDC_W });
                w.u16(*index);
            }
        }
        Insn::Local { op, index, wide } => {
            if *wide || *index > 0xFF {
                w.u8(WIDE);
                w.u8(*op);
                w.u16(*index);
            } else {
                w.u8(*op);
                w.u8(*index as u8);
            }
        }
        Insn::Iinc { index, delta, wide } => {
            if *wide || *index > 0xFF || i8::try_from(*delta).is_err() {
                w.u8(WIDE);
                w.u8(IINC);
                w.u16(*index);
                w.u16(*delta as u16);
            } else {
                w.u8(IINC);
                w.u8(*index as u8);
                w.u8(*delta as u8);
            }
        }
        Insn::Branch { op, target } => {
            let d = rel(*target)?;
            w.u8(*op);
            if matches!(*op, GOTO_W | JSR_W) {
                w.u32(d as i32 as u32);
            } else {
                w.u16(d as i16 as u16);
            }
        }
        Insn::TableSwitch { default, low, targets } => {
            w.u8(TABLESWITCH);
            for _ in 0..(4 - (pc + 1) % 4) % 4 {
                w.u8(0);
            }
            w.u32(rel(*default)? as i32 as u32);
            w.u32(*low as u32);
            let high = *low as i64 + targets.len() as i64 - 1;
            let high = i32::try_from(high).map_err(|_| Error::limit("tableswitch", "high bound overflows int"))?;
            w.u32(high as u32);
            for t in targets {
                w.u32(rel(*t)? as i32 as u32);
            }
        }
        Insn::LookupSwitch { default, pairs } => {
            w.u8(LOOKUPSWITCH);
            for _ in 0..(4 - (pc + 1) % 4) % 4 {
                w.u8(0);
            }
            w.u32(rel(*default)? as i32 as u32);
            w.u32(pairs.len() as u32);
            for (k, t) in pairs {
                w.u32(*k as u32);
                w.u32(rel(*t)? as i32 as u32);
            }
        }
        Insn::Cp { op, index } => {
            w.u8(*op);
            w.u16(*index);
        }
        Insn::InvokeInterface { index, count } => {
            w.u8(INVOKEINTERFACE);
            w.u16(*index);
            w.u8(*count);
            w.u8(0);
        }
        Insn::InvokeDynamic { index } => {
            w.u8(INVOKEDYNAMIC);
            w.u16(*index);
            w.u16(0);
        }
        Insn::MultiANewArray { index, dims } => {
            w.u8(MULTIANEWARRAY);
            w.u16(*index);
            w.u8(*dims);
        }
        Insn::NewArray(t) => {
            w.u8(NEWARRAY);
            w.u8(*t);
        }
    }
    Ok(())
}

fn decode_lines(data: &[u8], labels: &mut LabelMap) -> Result<Vec<(Label, u16)>> {
    let mut r = Reader::new(data, "LineNumberTable");
    let n = r.u16()?;
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let pc = r.u16()?;
        v.push((labels.at(pc as u32)?, r.u16()?));
    }
    r.finish()?;
    Ok(v)
}

fn decode_local_vars(data: &[u8], labels: &mut LabelMap) -> Result<Vec<LocalVar>> {
    let mut r = Reader::new(data, "LocalVariableTable");
    let n = r.u16()?;
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = r.u16()? as u32;
        let len = r.u16()? as u32;
        v.push(LocalVar {
            start: labels.at(start)?,
            end: labels.at(start + len)?,
            name: r.u16()?,
            descriptor: r.u16()?,
            index: r.u16()?,
        });
    }
    r.finish()?;
    Ok(v)
}
