//! A `javap -c -v` style listing of a class, from our own decoder.

use std::fmt::Write;

use crate::classfile::ClassFile;
use crate::code::opcodes::{self, mnemonic};
use crate::code::{Code, CodeAttribute, Insn, MethodInfo, VType};
use crate::constant_pool::{Constant, ConstantPool};
use crate::error::Result;

const CLASS_FLAGS: &[(u16, &str)] = &[
    (0x0001, "ACC_PUBLIC"),
    (0x0010, "ACC_FINAL"),
    (0x0020, "ACC_SUPER"),
    (0x0200, "ACC_INTERFACE"),
    (0x0400, "ACC_ABSTRACT"),
    (0x1000, "ACC_SYNTHETIC"),
    (0x2000, "ACC_ANNOTATION"),
    (0x4000, "ACC_ENUM"),
    (0x8000, "ACC_MODULE"),
];
const MEMBER_FLAGS: &[(u16, &str)] = &[
    (0x0001, "ACC_PUBLIC"),
    (0x0002, "ACC_PRIVATE"),
    (0x0004, "ACC_PROTECTED"),
    (0x0008, "ACC_STATIC"),
    (0x0010, "ACC_FINAL"),
    (0x0020, "ACC_SYNCHRONIZED"),
    (0x0040, "ACC_BRIDGE"),
    (0x0080, "ACC_VARARGS"),
    (0x0100, "ACC_NATIVE"),
    (0x0400, "ACC_ABSTRACT"),
    (0x0800, "ACC_STRICT"),
    (0x1000, "ACC_SYNTHETIC"),
];

fn flags(access: u16, table: &[(u16, &str)]) -> String {
    let names: Vec<&str> = table.iter().filter(|(b, _)| access & b != 0).map(|(_, n)| *n).collect();
    format!("(0x{access:04x}) {}", names.join(", "))
}

/// What a constant refers to, as javap's `//` comment shows it.
fn resolved(pool: &ConstantPool, i: u16) -> String {
    let Ok(c) = pool.get(i) else { return format!("<bad #{i}>") };
    let text = |r: Result<std::borrow::Cow<'_, str>>| r.map(|s| s.into_owned()).unwrap_or_else(|_| "?".into());
    match c {
        Constant::Utf8(_) => text(pool.utf8(i)),
        Constant::Integer(v) => v.to_string(),
        Constant::Float(b) => format!("{}f", f32::from_bits(*b)),
        Constant::Long(v) => format!("{v}l"),
        Constant::Double(b) => format!("{}d", f64::from_bits(*b)),
        Constant::Class(_) => text(pool.class_name(i)),
        Constant::String(n) => text(pool.utf8(*n)),
        Constant::FieldRef { .. } | Constant::MethodRef { .. } | Constant::InterfaceMethodRef { .. } => {
            match pool.member_ref(i) {
                Ok(r) => format!("{}.{}:{}", r.class, quoted(&r.name), r.descriptor),
                Err(_) => "?".into(),
            }
        }
        Constant::NameAndType { .. } => match pool.name_and_type(i) {
            Ok((n, d)) => format!("{}:{d}", quoted(&n)),
            Err(_) => "?".into(),
        },
        Constant::MethodHandle { kind, reference } => {
            format!("REF_{} {}", handle_kind(*kind), resolved(pool, *reference))
        }
        Constant::MethodType(d) => text(pool.utf8(*d)),
        Constant::Dynamic { .. } | Constant::InvokeDynamic { .. } => match pool.dynamic(i) {
            Ok((b, n, d)) => format!("#{b}:{n}:{d}"),
            Err(_) => "?".into(),
        },
        Constant::Module(n) | Constant::Package(n) => text(pool.utf8(*n)),
    }
}

fn quoted(name: &str) -> String {
    if name.starts_with('<') {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

fn handle_kind(k: u8) -> &'static str {
    [
        "?",
        "getField",
        "getStatic",
        "putField",
        "putStatic",
        "invokeVirtual",
        "invokeStatic",
        "invokeSpecial",
        "newInvokeSpecial",
        "invokeInterface",
    ]
    .get(k as usize)
    .copied()
    .unwrap_or("?")
}

fn kind_name(c: &Constant) -> &'static str {
    match c {
        Constant::Utf8(_) => "Utf8",
        Constant::Integer(_) => "Integer",
        Constant::Float(_) => "Float",
        Constant::Long(_) => "Long",
        Constant::Double(_) => "Double",
        Constant::Class(_) => "Class",
        Constant::String(_) => "String",
        Constant::FieldRef { .. } => "Fieldref",
        Constant::MethodRef { .. } => "Methodref",
        Constant::InterfaceMethodRef { .. } => "InterfaceMethodref",
        Constant::NameAndType { .. } => "NameAndType",
        Constant::MethodHandle { .. } => "MethodHandle",
        Constant::MethodType(_) => "MethodType",
        Constant::Dynamic { .. } => "Dynamic",
        Constant::InvokeDynamic { .. } => "InvokeDynamic",
        Constant::Module(_) => "Module",
        Constant::Package(_) => "Package",
    }
}

fn operands(c: &Constant) -> String {
    match c {
        Constant::Class(n)
        | Constant::String(n)
        | Constant::MethodType(n)
        | Constant::Module(n)
        | Constant::Package(n) => format!("#{n}"),
        Constant::FieldRef { class, name_and_type }
        | Constant::MethodRef { class, name_and_type }
        | Constant::InterfaceMethodRef { class, name_and_type } => {
            format!("#{class}.#{name_and_type}")
        }
        Constant::NameAndType { name, descriptor } => format!("#{name}:#{descriptor}"),
        Constant::MethodHandle { kind, reference } => format!("{kind}:#{reference}"),
        Constant::Dynamic { bootstrap, name_and_type } | Constant::InvokeDynamic { bootstrap, name_and_type } => {
            format!("#{bootstrap}:#{name_and_type}")
        }
        _ => String::new(),
    }
}

fn ref_comment(pool: &ConstantPool, i: u16) -> String {
    let kind = match pool.get(i) {
        Ok(Constant::MethodRef { .. }) => "Method ",
        Ok(Constant::InterfaceMethodRef { .. }) => "InterfaceMethod ",
        Ok(Constant::FieldRef { .. }) => "Field ",
        Ok(Constant::Class(_)) => "class ",
        Ok(Constant::String(_)) => "String ",
        Ok(Constant::Integer(_)) => "int ",
        Ok(Constant::Float(_)) => "float ",
        Ok(Constant::Long(_)) => "long ",
        Ok(Constant::Double(_)) => "double ",
        Ok(Constant::InvokeDynamic { .. }) => "InvokeDynamic ",
        _ => "",
    };
    format!("// {kind}{}", resolved(pool, i))
}

/// The listing of one class file.
pub fn disassemble(bytes: &[u8]) -> Result<String> {
    let cf = ClassFile::parse(bytes)?;
    let pool = &cf.pool;
    let name = cf.name()?.into_owned();
    let mut o = String::new();
    let _ = writeln!(o, "Classfile {}", name.replace('/', "."));
    let _ = writeln!(o, "  minor version: {}\n  major version: {}", cf.minor, cf.major);
    let _ = writeln!(o, "  flags: {}", flags(cf.access, CLASS_FLAGS));
    let _ = writeln!(o, "  this_class: #{:<27}// {name}", cf.this_class);
    let super_name = cf.super_name()?.map(|s| s.into_owned()).unwrap_or_default();
    let _ = writeln!(o, "  super_class: #{:<26}// {super_name}", cf.super_class);
    let _ = writeln!(
        o,
        "  interfaces: {}, fields: {}, methods: {}, attributes: {}",
        cf.interfaces.len(),
        cf.fields.len(),
        cf.methods.len(),
        cf.attributes.len()
    );
    let _ = writeln!(o, "Constant pool:");
    for (i, c) in pool.iter() {
        let ops = operands(c);
        let line = if ops.is_empty() {
            format!("{:>6} = {:<19}{}", format!("#{i}"), kind_name(c), resolved(pool, i))
        } else {
            format!("{:>6} = {:<19}{:<15}// {}", format!("#{i}"), kind_name(c), ops, resolved(pool, i))
        };
        let _ = writeln!(o, "{}", line.trim_end());
    }
    let _ = writeln!(o, "{{");
    for f in &cf.fields {
        let _ = writeln!(
            o,
            "  {};\n    descriptor: {}\n    flags: {}\n",
            cf.member_name(f)?,
            cf.member_descriptor(f)?,
            flags(f.access, MEMBER_FLAGS)
        );
    }
    for m in &cf.methods {
        let mname = cf.member_name(m)?.into_owned();
        let desc = cf.member_descriptor(m)?.into_owned();
        let _ = writeln!(o, "  {mname}{desc};\n    descriptor: {desc}\n    flags: {}", flags(m.access, MEMBER_FLAGS));
        if let Some(a) = cf.find_attribute(&m.attributes, "Code") {
            let info = MethodInfo { class: &name, name: &mname, descriptor: &desc, access: m.access };
            let code = Code::decode(&a.data, pool, &info)?;
            let args = info.initial_frame()?.local_slots();
            let _ = writeln!(
                o,
                "    Code:\n      stack={}, locals={}, args_size={}",
                code.max_stack, code.max_locals, args
            );
            list_code(&mut o, &code, pool)?;
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "}}");
    Ok(o)
}

fn list_code(o: &mut String, code: &Code, pool: &ConstantPool) -> Result<()> {
    let layout = code.compute_layout()?;
    let at = |l: crate::code::Label| layout.labels.get(l.0 as usize).copied().unwrap_or(u32::MAX);
    for (i, insn) in code.insns.iter().enumerate() {
        let Some(op) = insn.opcode() else { continue };
        let pc = layout.offsets[i];
        let name = mnemonic(op).unwrap_or("?");
        let line = match insn {
            Insn::Op(_) => name.to_string(),
            Insn::Bipush(v) => format!("{name:<13} {v}"),
            Insn::Sipush(v) => format!("{name:<13} {v}"),
            Insn::Ldc { index, .. } | Insn::Cp { index, .. } | Insn::InvokeDynamic { index } => {
                let tail = if op == opcodes::INVOKEDYNAMIC { ",  0" } else { "" };
                format!("{:<32}{}", format!("{name:<13} #{index}{tail}"), ref_comment(pool, *index))
            }
            Insn::InvokeInterface { index, count } => {
                format!("{:<32}{}", format!("{name:<13} #{index},  {count}"), ref_comment(pool, *index))
            }
            Insn::MultiANewArray { index, dims } => {
                format!("{:<32}{}", format!("{name:<13} #{index},  {dims}"), ref_comment(pool, *index))
            }
            Insn::Local { index, .. } => format!("{name:<13} {index}"),
            Insn::Iinc { index, delta, .. } => format!("{name:<13} {index}, {delta}"),
            Insn::Branch { target, .. } => format!("{name:<13} {}", at(*target)),
            Insn::NewArray(t) => {
                let ty = ["", "", "", "", "boolean", "char", "float", "double", "byte", "short", "int", "long"]
                    .get(*t as usize)
                    .copied()
                    .unwrap_or("?");
                format!("{name:<13} {ty}")
            }
            Insn::TableSwitch { default, low, targets } => {
                let mut s = format!("{name:<13} {{ // {low} to {}", *low as i64 + targets.len() as i64 - 1);
                for (k, t) in targets.iter().enumerate() {
                    let _ = write!(s, "\n{:>24}: {}", *low as i64 + k as i64, at(*t));
                }
                let _ = write!(s, "\n{:>24}: {}\n            }}", "default", at(*default));
                s
            }
            Insn::LookupSwitch { default, pairs } => {
                let mut s = format!("{name:<13} {{ // {}", pairs.len());
                for (k, t) in pairs {
                    let _ = write!(s, "\n{k:>24}: {}", at(*t));
                }
                let _ = write!(s, "\n{:>24}: {}\n            }}", "default", at(*default));
                s
            }
            Insn::Label(_) => continue,
        };
        let _ = writeln!(o, "      {pc:>4}: {line}");
    }
    if !code.handlers.is_empty() {
        let _ = writeln!(o, "      Exception table:\n         from    to  target type");
        for h in &code.handlers {
            let ty =
                if h.catch_type == 0 { "any".to_string() } else { format!("Class {}", resolved(pool, h.catch_type)) };
            let _ = writeln!(o, "         {:>5} {:>5} {:>5}   {ty}", at(h.start), at(h.end), at(h.handler));
        }
    }
    for (_, a) in &code.attributes {
        match a {
            CodeAttribute::LineNumbers(lines) => {
                let _ = writeln!(o, "      LineNumberTable:");
                for (l, n) in lines {
                    let _ = writeln!(o, "        line {n}: {}", at(*l));
                }
            }
            CodeAttribute::LocalVariables(vars) => {
                let _ = writeln!(o, "      LocalVariableTable:\n        Start  Length  Slot  Name   Signature");
                for v in vars {
                    let name = pool.utf8(v.name).map(|s| s.into_owned()).unwrap_or_default();
                    let desc = pool.utf8(v.descriptor).map(|s| s.into_owned()).unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "        {:>5}  {:>6}  {:>4}  {name:>5}   {desc}",
                        at(v.start),
                        at(v.end) - at(v.start),
                        v.index
                    );
                }
            }
            CodeAttribute::StackMapTable(frames) => {
                let _ = writeln!(o, "      StackMapTable: number_of_entries = {}", frames.len());
                let show = |ts: &[VType]| {
                    ts.iter()
                        .map(|t| match t {
                            VType::Object(n) => format!("class {n}"),
                            VType::Uninitialized(l) => format!("uninitialized {}", at(*l)),
                            other => format!("{other:?}").to_lowercase(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                for (l, f) in frames {
                    let _ = writeln!(
                        o,
                        "        frame at {}: locals = [ {} ], stack = [ {} ]",
                        at(*l),
                        show(&f.locals),
                        show(&f.stack)
                    );
                }
            }
            _ => {}
        }
    }
    Ok(())
}
