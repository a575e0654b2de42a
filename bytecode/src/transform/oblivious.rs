//! `oblivious`: failure-oblivious array access (Rinard et al., OSDI 2004). Every array load and
//! store of a method (or of one source line) becomes a call to a bounds-checked helper of the
//! runtime hooks class with the same stack effect plus the report id: out of bounds, a load yields
//! the element type's default (0, 0L, 0.0, `false`, `null`) and a store is dropped, each reported
//! as a fallback of the patch (`Hooks.fallback(id, null)`); a `null` array still throws
//! `NullPointerException`.
//!
//! The helpers ([`helper_methods`]) are real bytecode generated into `repair/rt/Hooks`, so an
//! access in bounds costs a static call the JIT inlines, not a JNI transition. `baload`/`bastore`
//! serve `byte[]` and `boolean[]`, told apart by the type inference; an `aaload` returns `Object`
//! from its helper and is followed by a `checkcast` to the array's component type, so the stack
//! holds the type the original instruction left there and the method's frames stay valid.

use super::guard::{edit_method, push_int};
use super::probe::hook;
use super::{hooks, MethodTarget};
use crate::analysis::Analysis;
use crate::classfile::{Attribute, ClassFile, Member, ACC_PUBLIC, ACC_STATIC};
use crate::code::opcodes::*;
use crate::code::{Code, CodeAttribute, Frame, Insn, MethodInfo, VType, ValueKind};
use crate::constant_pool::ConstantPool;
use crate::descriptor::MethodDescriptor;
use crate::error::{Error, Result};
use crate::hierarchy::Hierarchy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObliviousSpec {
    pub method: MethodTarget,
    /// Only the accesses on this source line (from the `LineNumberTable`); `None`: all of them.
    pub line: Option<u16>,
    /// Reported to `Hooks.fallback` for every access made oblivious.
    pub report_id: i32,
}

/// Rewrites the array accesses of `spec.method` (or of its line `spec.line`). Returns the class
/// and how many accesses were rewritten. A method (or line) without an array access is an error.
pub fn oblivious(class: &[u8], spec: &ObliviousSpec, hierarchy: &dyn Hierarchy) -> Result<(Vec<u8>, usize)> {
    let mut cf = ClassFile::parse(class)?;
    let index = cf.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    let mut rewritten = 0;
    edit_method(&mut cf, index, |code, pool, info, _major| {
        rewritten = rewrite_accesses(code, pool, info, spec, hierarchy)?;
        Ok(())
    })?;
    Ok((cf.to_bytes()?, rewritten))
}

/// An array instruction and the element type it reads or writes, as the helper needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Int,
    Long,
    Float,
    Double,
    Reference,
    Byte,
    Char,
    Short,
    Boolean,
}

impl Element {
    /// The element of a load (`false`) or store (`true`) opcode; `None` for other opcodes.
    /// `baload`/`bastore` answer `Byte`; the array's type says whether it is `Boolean`.
    fn of(op: u8) -> Option<(Element, bool)> {
        match op {
            IALOAD..=SALOAD => Some((Element::ALL[(op - IALOAD) as usize], false)),
            IASTORE..=SASTORE => Some((Element::ALL[(op - IASTORE) as usize], true)),
            _ => None,
        }
    }

    fn load_op(self) -> u8 {
        match self {
            Element::Int => IALOAD,
            Element::Long => LALOAD,
            Element::Float => FALOAD,
            Element::Double => DALOAD,
            Element::Reference => AALOAD,
            Element::Byte | Element::Boolean => BALOAD,
            Element::Char => CALOAD,
            Element::Short => SALOAD,
        }
    }

    fn store_op(self) -> u8 {
        self.load_op() - IALOAD + IASTORE
    }

    /// The helper for a load or store of this element: its name and descriptor
    /// ([`hooks::OBLIVIOUS`] lists a load and a store per element, in [`Element::ALL`] order).
    fn helper(self, store: bool) -> (&'static str, &'static str) {
        let at = Element::ALL.iter().position(|e| *e == self).expect("ALL lists every element");
        hooks::OBLIVIOUS[at * 2 + usize::from(store)]
    }

    /// In opcode order (`iaload` .. `saload`), then `boolean`.
    const ALL: [Element; 9] = [
        Element::Int,
        Element::Long,
        Element::Float,
        Element::Double,
        Element::Reference,
        Element::Byte,
        Element::Char,
        Element::Short,
        Element::Boolean,
    ];
}

fn rewrite_accesses(
    code: &mut Code,
    pool: &mut ConstantPool,
    info: &MethodInfo<'_>,
    spec: &ObliviousSpec,
    hierarchy: &dyn Hierarchy,
) -> Result<usize> {
    let analysis = Analysis::run(code, pool, info, hierarchy)?;
    let line_at = lines_of(code);
    // (instruction index, element, store?, component class for a checkcast after aaload)
    let mut sites: Vec<(usize, Element, bool, Option<String>)> = Vec::new();
    let mut lines_with_access = Vec::new();
    for (i, insn) in code.insns.iter().enumerate() {
        let Insn::Op(op) = *insn else { continue };
        let Some((mut element, store)) = Element::of(op) else { continue };
        // Unreachable code has no types; it never runs.
        let Some(state) = &analysis.states[i] else { continue };
        let line = line_at[i];
        if let Some(l) = line {
            lines_with_access.push(l);
        }
        if spec.line.is_some_and(|want| line != Some(want)) {
            continue;
        }
        let depth = if store { 3 } else { 2 };
        let array = match state.stack.len().checked_sub(depth).map(|at| &state.stack[at]) {
            Some(VType::Object(name)) if name.starts_with('[') => name.clone(),
            // Always `null` here: it throws `NullPointerException` as it is, which stays.
            Some(VType::Null) => continue,
            other => {
                let inferred = match other {
                    Some(VType::Object(name)) => name.replace('/', "."),
                    Some(t) => format!("{t:?}"),
                    None => "an empty stack".to_string(),
                };
                let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
                return Err(Error::refused(
                    format!("{}{at}", mnemonic(op).unwrap_or("array access")),
                    format!("the array's type is not known: the type inference gives {inferred}"),
                ));
            }
        };
        if element == Element::Byte && &*array == "[Z" {
            element = Element::Boolean;
        }
        let cast =
            (element == Element::Reference && !store).then(|| component(&array)).filter(|c| c != "java/lang/Object");
        sites.push((i, element, store, cast));
    }
    if sites.is_empty() {
        return Err(match spec.line {
            None => Error::not_found("oblivious", "the method has no array access (no xaload or xastore)"),
            Some(want) => {
                lines_with_access.sort_unstable();
                lines_with_access.dedup();
                let has_lines = line_at.iter().any(Option::is_some);
                Error::not_found(
                    "oblivious",
                    match (has_lines, lines_with_access.is_empty()) {
                        (false, _) => format!("no line {want}: the method has no line numbers"),
                        (true, true) => format!("line {want} has no array access, nor has any line of the method"),
                        (true, false) => format!(
                            "line {want} has no array access; the method's array accesses are on line{} {}",
                            if lines_with_access.len() == 1 { "" } else { "s" },
                            lines_with_access.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
                        ),
                    },
                )
            }
        });
    }
    let id = push_int(spec.report_id, pool)?;
    // Back to front, so the indices of the sites not yet rewritten stay valid.
    for (i, element, store, cast) in sites.iter().rev() {
        let mut call = vec![id.clone(), hook(pool, element.helper(*store))?];
        if let Some(c) = cast {
            call.push(Insn::Cp { op: CHECKCAST, index: pool.add_class(c)? });
        }
        code.insns.splice(*i..=*i, call);
    }
    Ok(sites.len())
}

/// The source line of every entry of `code.insns` (`None` before the first line entry or
/// without a `LineNumberTable`).
fn lines_of(code: &Code) -> Vec<Option<u16>> {
    let starts: std::collections::HashMap<_, _> = code
        .attributes
        .iter()
        .flat_map(|(_, a)| match a {
            CodeAttribute::LineNumbers(l) => l.clone(),
            _ => Vec::new(),
        })
        .collect();
    let mut line = None;
    code.insns
        .iter()
        .map(|insn| {
            if let Insn::Label(l) = insn {
                if let Some(n) = starts.get(l) {
                    line = Some(*n);
                }
            }
            line
        })
        .collect()
}

/// The component type of an array type, as a class constant names it (`[I` for `[[I`,
/// `java/lang/String` for `[Ljava/lang/String;`).
fn component(array: &str) -> String {
    let c = &array[1..];
    match c.strip_prefix('L').and_then(|s| s.strip_suffix(';')) {
        Some(class) => class.to_string(),
        None => c.to_string(),
    }
}

/// The helper methods of the hooks class, one per entry of [`hooks::OBLIVIOUS`], with their code:
///
/// ```text
/// static int iaload(int[] a, int i, int id) {
///     if (i < a.length && i >= 0) return a[i];   // a.length: NullPointerException for null
///     Hooks.fallback(id, null);
///     return 0;
/// }
/// static void iastore(int[] a, int i, int v, int id) {
///     if (i < a.length && i >= 0) { a[i] = v; return; }
///     Hooks.fallback(id, null);
/// }
/// ```
pub fn helper_methods(pool: &mut ConstantPool) -> Result<Vec<Member>> {
    let mut methods = Vec::with_capacity(hooks::OBLIVIOUS.len());
    for element in Element::ALL {
        for store in [false, true] {
            let (name, descriptor) = element.helper(store);
            let info = MethodInfo { class: hooks::CLASS, name, descriptor, access: ACC_PUBLIC | ACC_STATIC };
            let code = helper_code(element, store, pool, &info)?;
            let data = code.encode(pool, &info).map_err(|e| e.within(format!("helper {name}{descriptor}")))?;
            methods.push(Member {
                access: info.access,
                name: pool.add_utf8(name)?,
                descriptor: pool.add_utf8(descriptor)?,
                attributes: vec![Attribute { name: pool.add_utf8("Code")?, data }],
            });
        }
    }
    Ok(methods)
}

fn helper_code(element: Element, store: bool, pool: &mut ConstantPool, info: &MethodInfo<'_>) -> Result<Code> {
    let desc = MethodDescriptor::parse(info.descriptor)?;
    // The value loaded (returned) or stored (the third parameter).
    let value = if store { &desc.params[2] } else { &desc.ret };
    let kind = ValueKind::of(value).expect("elements are not void");
    // Locals: array 0, index 1, [value 2 (2..3 when wide)], id last.
    let id_slot = if store { 2 + kind.slots() } else { 2 };
    let max_locals = id_slot + 1;
    let mut code = Code::new(2 + kind.slots(), max_locals);
    let out_of_bounds = code.new_label();
    let mut insns = vec![
        Insn::load(ValueKind::Int, 1),
        Insn::load(ValueKind::Reference, 0),
        Insn::Op(ARRAYLENGTH),
        Insn::Branch { op: IF_ICMPGE, target: out_of_bounds },
        Insn::load(ValueKind::Int, 1),
        Insn::Branch { op: IFLT, target: out_of_bounds },
        Insn::load(ValueKind::Reference, 0),
        Insn::load(ValueKind::Int, 1),
    ];
    if store {
        insns.extend([Insn::load(kind, 2), Insn::Op(element.store_op()), Insn::Op(RETURN)]);
    } else {
        insns.extend([Insn::Op(element.load_op()), Insn::Op(kind.return_op())]);
    }
    insns.extend([
        Insn::Label(out_of_bounds),
        Insn::load(ValueKind::Int, id_slot),
        Insn::Op(ACONST_NULL),
        hook(pool, hooks::FALLBACK)?,
    ]);
    if store {
        insns.push(Insn::Op(RETURN));
    } else {
        insns.extend([kind.default_value(), Insn::Op(kind.return_op())]);
    }
    code.insns = insns;
    let locals = info.initial_frame()?.locals;
    code.frames_or_insert(pool)?.push((out_of_bounds, Frame { locals, stack: Vec::new() }));
    Ok(code)
}
