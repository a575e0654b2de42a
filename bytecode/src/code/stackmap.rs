//! `StackMapTable` (JVMS 4.7.4): decoded into full frames at labels, re-encoded compactly.

use std::sync::Arc;

use super::insn::Label;
use crate::bytes::{Reader, Writer};
use crate::constant_pool::ConstantPool;
use crate::error::{Error, Result};

/// A verification type. Long and double are one entry (as in the class file), not two slots.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VType {
    Top,
    Integer,
    Float,
    Double,
    Long,
    Null,
    UninitializedThis,
    /// A class or array type by internal name (`java/lang/String`, `[I`).
    Object(Arc<str>),
    /// The object created by the `new` instruction at the label.
    Uninitialized(Label),
}

impl VType {
    pub fn is_wide(&self) -> bool {
        matches!(self, VType::Long | VType::Double)
    }
}

/// A full frame: locals and stack as verification-type entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub locals: Vec<VType>,
    pub stack: Vec<VType>,
}

impl Frame {
    /// Local slots the `locals` list covers (long/double count two).
    pub fn local_slots(&self) -> usize {
        self.locals.iter().map(|t| if t.is_wide() { 2 } else { 1 }).sum()
    }
    pub fn stack_slots(&self) -> usize {
        self.stack.iter().map(|t| if t.is_wide() { 2 } else { 1 }).sum()
    }
}

/// Decodes a `StackMapTable` body. `initial` is the implicit frame at offset 0 (from the
/// method descriptor); `label_at` maps a code offset to a label (and rejects bad offsets).
pub fn decode(
    data: &[u8],
    pool: &ConstantPool,
    initial: &Frame,
    label_at: &mut dyn FnMut(u32) -> Result<Label>,
) -> Result<Vec<(Label, Frame)>> {
    let mut r = Reader::new(data, "StackMapTable");
    let n = r.u16()?;
    let mut out: Vec<(Label, Frame)> = Vec::with_capacity(n as usize);
    let mut prev = initial.clone();
    let mut offset: i64 = -1;
    let mut names = NameCache::default();
    let pool = &mut (pool, &mut names);
    for _ in 0..n {
        let tag = r.u8()?;
        let (delta, frame) = match tag {
            0..=63 => (tag as u32, Frame { locals: prev.locals.clone(), stack: vec![] }),
            64..=127 => (
                tag as u32 - 64,
                Frame { locals: prev.locals.clone(), stack: vec![read_vtype(&mut r, pool, label_at)?] },
            ),
            128..=246 => return Err(Error::malformed("StackMapTable", format!("reserved frame type {tag}"))),
            247 => {
                let d = r.u16()? as u32;
                (d, Frame { locals: prev.locals.clone(), stack: vec![read_vtype(&mut r, pool, label_at)?] })
            }
            248..=250 => {
                let d = r.u16()? as u32;
                let k = 251 - tag as usize;
                if k > prev.locals.len() {
                    return Err(Error::malformed(
                        "StackMapTable",
                        format!("chop of {k} locals from {}", prev.locals.len()),
                    ));
                }
                (d, Frame { locals: prev.locals[..prev.locals.len() - k].to_vec(), stack: vec![] })
            }
            251 => (r.u16()? as u32, Frame { locals: prev.locals.clone(), stack: vec![] }),
            252..=254 => {
                let d = r.u16()? as u32;
                let mut locals = prev.locals.clone();
                for _ in 0..(tag - 251) {
                    locals.push(read_vtype(&mut r, pool, label_at)?);
                }
                (d, Frame { locals, stack: vec![] })
            }
            255 => {
                let d = r.u16()? as u32;
                let nl = r.u16()?;
                let mut locals = Vec::with_capacity(nl as usize);
                for _ in 0..nl {
                    locals.push(read_vtype(&mut r, pool, label_at)?);
                }
                let ns = r.u16()?;
                let mut stack = Vec::with_capacity(ns as usize);
                for _ in 0..ns {
                    stack.push(read_vtype(&mut r, pool, label_at)?);
                }
                (d, Frame { locals, stack })
            }
        };
        offset += delta as i64 + 1;
        let label = label_at(offset as u32)?;
        prev = frame.clone();
        out.push((label, frame));
    }
    r.finish()?;
    Ok(out)
}

fn read_vtype(
    r: &mut Reader<'_>,
    pool: &mut (&ConstantPool, &mut NameCache),
    label_at: &mut dyn FnMut(u32) -> Result<Label>,
) -> Result<VType> {
    Ok(match r.u8()? {
        0 => VType::Top,
        1 => VType::Integer,
        2 => VType::Float,
        3 => VType::Double,
        4 => VType::Long,
        5 => VType::Null,
        6 => VType::UninitializedThis,
        7 => VType::Object(pool.1.get(pool.0, r.u16()?)?),
        8 => VType::Uninitialized(label_at(r.u16()? as u32)?),
        t => return Err(Error::malformed("StackMapTable", format!("unknown verification type {t}"))),
    })
}

/// Class names already read in this table: frames repeat a few names many times.
#[derive(Default)]
struct NameCache(Vec<(u16, Arc<str>)>);

impl NameCache {
    fn get(&mut self, pool: &ConstantPool, index: u16) -> Result<Arc<str>> {
        if let Some((_, n)) = self.0.iter().find(|(i, _)| *i == index) {
            return Ok(n.clone());
        }
        let n: Arc<str> = Arc::from(pool.class_name(index)?.as_ref());
        self.0.push((index, n.clone()));
        Ok(n)
    }
}

fn write_vtype(w: &mut Writer, t: &VType, pool: &mut ConstantPool, offset_of: &dyn Fn(Label) -> u32) -> Result<()> {
    match t {
        VType::Top => w.u8(0),
        VType::Integer => w.u8(1),
        VType::Float => w.u8(2),
        VType::Double => w.u8(3),
        VType::Long => w.u8(4),
        VType::Null => w.u8(5),
        VType::UninitializedThis => w.u8(6),
        VType::Object(name) => {
            w.u8(7);
            w.u16(pool.add_class(name)?);
        }
        VType::Uninitialized(l) => {
            w.u8(8);
            w.u16(offset_of(*l) as u16);
        }
    }
    Ok(())
}

/// Encodes frames (already sorted by offset, at most one per offset) in the most compact form.
pub fn encode(
    frames: &[(u32, &Frame)],
    initial: &Frame,
    pool: &mut ConstantPool,
    offset_of: &dyn Fn(Label) -> u32,
) -> Result<Vec<u8>> {
    let mut w = Writer::with_capacity(frames.len() * 4 + 2);
    w.len16(frames.len(), "StackMapTable frames")?;
    let mut prev = initial;
    let mut prev_offset: i64 = -1;
    for (offset, f) in frames {
        let delta = *offset as i64 - prev_offset - 1;
        if delta < 0 {
            return Err(Error::malformed("StackMapTable", format!("frames out of order at offset {offset}")));
        }
        let delta = delta as u16;
        let same_locals = f.locals == prev.locals;
        if same_locals && f.stack.is_empty() {
            if delta < 64 {
                w.u8(delta as u8);
            } else {
                w.u8(251);
                w.u16(delta);
            }
        } else if same_locals && f.stack.len() == 1 {
            if delta < 64 {
                w.u8(64 + delta as u8);
            } else {
                w.u8(247);
                w.u16(delta);
            }
            write_vtype(&mut w, &f.stack[0], pool, offset_of)?;
        } else if f.stack.is_empty()
            && f.locals.len() < prev.locals.len()
            && prev.locals.len() - f.locals.len() <= 3
            && prev.locals.starts_with(&f.locals)
        {
            w.u8(251 - (prev.locals.len() - f.locals.len()) as u8);
            w.u16(delta);
        } else if f.stack.is_empty()
            && f.locals.len() > prev.locals.len()
            && f.locals.len() - prev.locals.len() <= 3
            && f.locals.starts_with(&prev.locals)
        {
            w.u8(251 + (f.locals.len() - prev.locals.len()) as u8);
            w.u16(delta);
            for t in &f.locals[prev.locals.len()..] {
                write_vtype(&mut w, t, pool, offset_of)?;
            }
        } else {
            w.u8(255);
            w.u16(delta);
            w.len16(f.locals.len(), "frame locals")?;
            for t in &f.locals {
                write_vtype(&mut w, t, pool, offset_of)?;
            }
            w.len16(f.stack.len(), "frame stack")?;
            for t in &f.stack {
                write_vtype(&mut w, t, pool, offset_of)?;
            }
        }
        prev = f;
        prev_offset = *offset as i64;
    }
    Ok(w.into_inner())
}

/// Number of frames and offset of the last one in an encoded table, read without decoding types.
pub fn last_frame_offset(data: &[u8]) -> Result<(u16, Option<u32>)> {
    let mut r = Reader::new(data, "StackMapTable");
    let n = r.u16()?;
    let mut offset: i64 = -1;
    let skip_types = |r: &mut Reader<'_>, k: u16| -> Result<()> {
        for _ in 0..k {
            if matches!(r.u8()?, 7 | 8) {
                r.skip(2)?;
            }
        }
        Ok(())
    };
    for _ in 0..n {
        let tag = r.u8()?;
        let delta = match tag {
            0..=63 => tag as u32,
            64..=127 => {
                skip_types(&mut r, 1)?;
                tag as u32 - 64
            }
            128..=246 => return Err(Error::malformed("StackMapTable", format!("reserved frame type {tag}"))),
            247 => {
                let d = r.u16()? as u32;
                skip_types(&mut r, 1)?;
                d
            }
            248..=251 => r.u16()? as u32,
            252..=254 => {
                let d = r.u16()? as u32;
                skip_types(&mut r, (tag - 251) as u16)?;
                d
            }
            255 => {
                let d = r.u16()? as u32;
                let nl = r.u16()?;
                skip_types(&mut r, nl)?;
                let ns = r.u16()?;
                skip_types(&mut r, ns)?;
                d
            }
        };
        offset += delta as i64 + 1;
    }
    r.finish()?;
    Ok((n, if n == 0 { None } else { Some(offset as u32) }))
}
