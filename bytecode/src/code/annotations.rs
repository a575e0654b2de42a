//! `Runtime(In)VisibleTypeAnnotations` of a `Code` attribute (JVMS 4.7.20): only the target
//! carries code offsets; the type path and annotation are kept as bytes.

use super::insn::Label;
use crate::bytes::{Reader, Writer};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeAnnotationTarget {
    /// `localvar_target` (0x40 local variable, 0x41 resource variable): ranges and slot.
    LocalVar { target_type: u8, ranges: Vec<(Label, Label, u16)> },
    /// `catch_target`: index into the exception table.
    Catch(u16),
    /// `offset_target` (0x43–0x46: instanceof, new, method references).
    Offset { target_type: u8, at: Label },
    /// `type_argument_target` (0x47–0x4B: casts, generic calls).
    TypeArgument { target_type: u8, at: Label, argument: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeAnnotation {
    pub target: TypeAnnotationTarget,
    /// `type_path` followed by the annotation, verbatim.
    pub rest: Vec<u8>,
}

pub fn decode(data: &[u8], label_at: &mut dyn FnMut(u32) -> Result<Label>) -> Result<Vec<TypeAnnotation>> {
    let mut r = Reader::new(data, "type annotations");
    let n = r.u16()?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let target_type = r.u8()?;
        let target = match target_type {
            0x40 | 0x41 => {
                let k = r.u16()?;
                let mut ranges = Vec::with_capacity(k as usize);
                for _ in 0..k {
                    let start = r.u16()? as u32;
                    let len = r.u16()? as u32;
                    ranges.push((label_at(start)?, label_at(start + len)?, r.u16()?));
                }
                TypeAnnotationTarget::LocalVar { target_type, ranges }
            }
            0x42 => TypeAnnotationTarget::Catch(r.u16()?),
            0x43..=0x46 => TypeAnnotationTarget::Offset { target_type, at: label_at(r.u16()? as u32)? },
            0x47..=0x4B => {
                TypeAnnotationTarget::TypeArgument { target_type, at: label_at(r.u16()? as u32)?, argument: r.u8()? }
            }
            t => {
                return Err(Error::malformed("type annotation", format!("target type {t:#04x} is not allowed in Code")))
            }
        };
        let start = r.pos();
        let path_len = r.u8()? as usize;
        r.skip(path_len * 2)?;
        skip_annotation(&mut r, 0)?;
        let end = r.pos();
        out.push(TypeAnnotation { target, rest: data[start..end].to_vec() });
    }
    r.finish()?;
    Ok(out)
}

pub fn encode(list: &[TypeAnnotation], offset_of: &dyn Fn(Label) -> u32) -> Result<Vec<u8>> {
    let mut w = Writer::default();
    w.len16(list.len(), "type annotations")?;
    let off = |l: Label| -> Result<u16> {
        let o = offset_of(l);
        u16::try_from(o).map_err(|_| Error::malformed("type annotation", "refers to an unbound label"))
    };
    for a in list {
        match &a.target {
            TypeAnnotationTarget::LocalVar { target_type, ranges } => {
                w.u8(*target_type);
                w.len16(ranges.len(), "type annotation ranges")?;
                for (s, e, slot) in ranges {
                    let (s, e) = (off(*s)?, off(*e)?);
                    w.u16(s);
                    w.u16(e.saturating_sub(s));
                    w.u16(*slot);
                }
            }
            TypeAnnotationTarget::Catch(i) => {
                w.u8(0x42);
                w.u16(*i);
            }
            TypeAnnotationTarget::Offset { target_type, at } => {
                w.u8(*target_type);
                w.u16(off(*at)?);
            }
            TypeAnnotationTarget::TypeArgument { target_type, at, argument } => {
                w.u8(*target_type);
                w.u16(off(*at)?);
                w.u8(*argument);
            }
        }
        w.bytes(&a.rest);
    }
    Ok(w.into_inner())
}

const MAX_NESTING: u32 = 64;

fn skip_annotation(r: &mut Reader<'_>, depth: u32) -> Result<()> {
    if depth > MAX_NESTING {
        return Err(Error::malformed("annotation", "nested too deeply"));
    }
    r.u16()?;
    let pairs = r.u16()?;
    for _ in 0..pairs {
        r.u16()?;
        skip_element_value(r, depth + 1)?;
    }
    Ok(())
}

fn skip_element_value(r: &mut Reader<'_>, depth: u32) -> Result<()> {
    if depth > MAX_NESTING {
        return Err(Error::malformed("annotation", "nested too deeply"));
    }
    match r.u8()? {
        b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' | b'Z' | b's' | b'c' => r.skip(2),
        b'e' => r.skip(4),
        b'@' => skip_annotation(r, depth + 1),
        b'[' => {
            let n = r.u16()?;
            for _ in 0..n {
                skip_element_value(r, depth + 1)?;
            }
            Ok(())
        }
        t => Err(Error::malformed("annotation", format!("unknown element value tag {t:#04x}"))),
    }
}
