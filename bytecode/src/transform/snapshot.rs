//! `snapshot`: before a source line runs, hand the runtime hooks every initialised local of the
//! method (arguments and `this` included) boxed into an `Object[]`: `Hooks.snapshot(id, locals)`.
//! The thread does not stop and the method computes what it did before.
//!
//! Which slots hold a value comes from the verifier-grade type inference, so every load the
//! snapshot makes is one HotSpot's verifier accepts; the `LocalVariableTable`, when present and
//! agreeing with the inferred kind, only names the values and picks the wrapper of int-like ones.
//! The inserted code does not branch or touch locals, so existing frames stay valid as they are.

use std::collections::HashMap;

use super::guard::{edit_method, push_int};
use super::probe::{boxing, hook};
use super::{hooks, MethodTarget};
use crate::analysis::Analysis;
use crate::classfile::ClassFile;
use crate::code::opcodes::*;
use crate::code::{Code, CodeAttribute, Insn, MethodInfo, VType, ValueKind};
use crate::constant_pool::ConstantPool;
use crate::descriptor::{parse_field, FieldType};
use crate::error::{Error, Result};
use crate::hierarchy::ObjectHierarchy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    /// `None`: the method whose code has the line.
    pub method: Option<MethodTarget>,
    pub line: u16,
    pub snapshot_id: i32,
}

/// One captured local, in the order of the `Object[]` the hook receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedLocal {
    pub slot: u16,
    /// From the `LocalVariableTable` at the snapshot point; else `slotN`.
    pub name: String,
    /// Java spelling (`int`, `java.lang.String`, `int[]`): from the `LocalVariableTable`, else as
    /// inferred (`null` for a local known to hold null).
    pub type_name: String,
    /// Name and type come from the `LocalVariableTable`.
    pub declared: bool,
}

/// Inserts the snapshot before the first instruction of `spec.line` (the first in code order
/// when javac splits the line, as it does a `for` header). Returns the class and what the array
/// holds.
pub fn snapshot(class: &[u8], spec: &SnapshotSpec) -> Result<(Vec<u8>, Vec<CapturedLocal>)> {
    let mut cf = ClassFile::parse(class)?;
    let class_name = cf.name()?.replace('/', ".");
    let line = spec.line;
    let refuse = |why: String| Error::refused("snapshot", why);

    let mut tables = Vec::new();
    for (i, m) in cf.methods.iter().enumerate() {
        if let Some(lines) = super::line_table(&cf, m)?.map(|t| t.into_iter().map(|(_, l)| l).collect::<Vec<_>>()) {
            tables.push((i, lines));
        }
    }
    if tables.is_empty() {
        return Err(refuse(format!(
            "class {class_name} has no LineNumberTable (compiled with -g:none?): it has no lines to snapshot"
        )));
    }
    let mut scope = "";
    if let Some(t) = &spec.method {
        let index = cf.find_method(&t.name, t.descriptor.as_deref())?;
        tables.retain(|(i, _)| *i == index);
        if tables.is_empty() {
            return Err(refuse(format!("method {t} of class {class_name} has no code with line numbers")));
        }
        scope = " in that method";
    }
    let having: Vec<usize> = tables.iter().filter(|(_, l)| l.contains(&line)).map(|(i, _)| *i).collect();
    let index = match having[..] {
        [i] => i,
        [] => {
            let lines = tables.into_iter().flat_map(|(_, l)| l).collect();
            let method = spec.method.as_ref().map(|t| format!(" in method {t}")).unwrap_or_default();
            return Err(Error::not_found(
                "snapshot",
                format!(
                    "line {line} of class {class_name} has no code{method}; lines with code{scope}: {}",
                    ranges(lines)
                ),
            ));
        }
        _ => {
            let names = having
                .iter()
                .map(|&i| Ok(format!("{}{}", cf.member_name(&cf.methods[i])?, cf.member_descriptor(&cf.methods[i])?)))
                .collect::<Result<Vec<_>>>()?;
            return Err(refuse(format!(
                "line {line} of class {class_name} has code in several methods: {}; name one",
                names.join(", ")
            )));
        }
    };

    let mut captured = Vec::new();
    edit_method(&mut cf, index, |code, pool, info, _| {
        captured = insert(code, pool, info, spec, &class_name)?;
        Ok(())
    })?;
    Ok((cf.to_bytes()?, captured))
}

fn insert(
    code: &mut Code,
    pool: &mut ConstantPool,
    info: &MethodInfo<'_>,
    spec: &SnapshotSpec,
    class_name: &str,
) -> Result<Vec<CapturedLocal>> {
    let analysis = Analysis::run(code, pool, info, &ObjectHierarchy)?;
    let position: HashMap<_, _> = code
        .insns
        .iter()
        .enumerate()
        .filter_map(|(i, insn)| match insn {
            Insn::Label(l) => Some((*l, i)),
            _ => None,
        })
        .collect();
    let mut starts: Vec<usize> = code
        .attributes
        .iter()
        .flat_map(|(_, a)| match a {
            CodeAttribute::LineNumbers(l) => l.iter().filter(|(_, n)| *n == spec.line).map(|(l, _)| *l).collect(),
            _ => Vec::new(),
        })
        .filter_map(|l| position.get(&l).copied())
        // Past every label bound there, so branches to the line run the snapshot too.
        .map(|p| p + code.insns[p..].iter().take_while(|i| matches!(i, Insn::Label(_))).count())
        .collect();
    starts.sort_unstable();
    let (at, state) = starts.iter().find_map(|&i| Some((i, analysis.states.get(i)?.as_ref()?))).ok_or_else(|| {
        Error::refused("snapshot", format!("line {} of class {class_name} is unreachable", spec.line))
    })?;

    // LocalVariableTable entries in scope at `at`: (slot, name, type).
    let mut in_scope = Vec::new();
    for (_, a) in &code.attributes {
        let CodeAttribute::LocalVariables(vars) = a else { continue };
        for v in vars {
            let (Some(&s), Some(&e)) = (position.get(&v.start), position.get(&v.end)) else { continue };
            if s <= at && at < e {
                if let Ok(t) = parse_field(&pool.utf8(v.descriptor)?) {
                    in_scope.push((v.index, pool.utf8(v.name)?.into_owned(), t));
                }
            }
        }
    }

    let mut captured = Vec::new();
    let mut fill = Vec::new();
    for (slot, t) in state.locals.iter().enumerate() {
        let slot = slot as u16;
        // Top, and objects not constructed yet (`this` before `super(...)`), cannot be read.
        let (kind, inferred) = match t {
            VType::Integer => (ValueKind::Int, Some(FieldType::Int)),
            VType::Long => (ValueKind::Long, Some(FieldType::Long)),
            VType::Float => (ValueKind::Float, Some(FieldType::Float)),
            VType::Double => (ValueKind::Double, Some(FieldType::Double)),
            VType::Null => (ValueKind::Reference, None),
            VType::Object(n) if n.starts_with('[') => (ValueKind::Reference, Some(FieldType::Array(n.to_string()))),
            VType::Object(n) => (ValueKind::Reference, Some(FieldType::Object(n.to_string()))),
            VType::Top | VType::UninitializedThis | VType::Uninitialized(_) => continue,
        };
        // A table entry whose kind disagrees with the code (hand-made or stale tables) is ignored.
        let declared = in_scope.iter().find(|(s, _, t)| *s == slot && ValueKind::of(t) == Some(kind));
        let (name, ty) = match declared {
            Some((_, name, t)) => (name.clone(), Some(t.clone())),
            None => (format!("slot{slot}"), inferred),
        };
        // `xload_n` where it exists: the snapshot costs code bytes in every hit method.
        let load = match kind.load_op() - ILOAD {
            k if slot < 4 => Insn::Op(ILOAD_0 + k * 4 + slot as u8),
            _ => Insn::load(kind, slot),
        };
        fill.extend([Insn::Op(DUP), push_int(captured.len() as i32, pool)?, load]);
        if let Some(t) = &ty {
            fill.extend(boxing(t, pool)?);
        }
        fill.push(Insn::Op(AASTORE));
        captured.push(CapturedLocal {
            slot,
            name,
            type_name: ty.map_or_else(|| "null".to_string(), |t| t.java_name()),
            declared: declared.is_some(),
        });
    }

    let mut call = vec![
        push_int(spec.snapshot_id, pool)?,
        push_int(captured.len() as i32, pool)?,
        Insn::Cp { op: ANEWARRAY, index: pool.add_class("java/lang/Object")? },
    ];
    call.extend(fill);
    call.push(hook(pool, hooks::SNAPSHOT)?);
    code.insns.splice(at..at, call);
    // id, array, array, index, a long or double value.
    code.max_stack = code.max_stack.saturating_add(6);
    Ok(captured)
}

/// `5-9, 12, 14-20`.
fn ranges(mut lines: Vec<u16>) -> String {
    lines.sort_unstable();
    lines.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let mut j = i;
        while j + 1 < lines.len() && lines[j + 1] - lines[j] == 1 {
            j += 1;
        }
        out.push(if i == j { lines[i].to_string() } else { format!("{}-{}", lines[i], lines[j]) });
        i = j + 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_collapse_consecutive_lines() {
        assert_eq!(super::ranges(vec![14, 5, 6, 7, 8, 9, 12, 15, 16, 9, 17, 18, 19, 20]), "5-9, 12, 14-20");
        assert_eq!(super::ranges(vec![3]), "3");
        assert_eq!(super::ranges(vec![]), "");
    }
}
