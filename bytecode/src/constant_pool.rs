//! The constant pool: entries kept exactly as read (so an untouched pool writes back
//! byte-identical), with deduplicating insertion for edits.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::bytes::{Reader, Writer};
use crate::error::{Error, Result};
use crate::mutf8;

/// One constant-pool entry. Names index other entries, as in the class file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Constant {
    /// Modified UTF-8 bytes, as stored (not validated until read as a string).
    Utf8(Vec<u8>),
    Integer(i32),
    /// Raw IEEE bits, so NaN payloads survive.
    Float(u32),
    Long(i64),
    Double(u64),
    Class(u16),
    String(u16),
    FieldRef {
        class: u16,
        name_and_type: u16,
    },
    MethodRef {
        class: u16,
        name_and_type: u16,
    },
    InterfaceMethodRef {
        class: u16,
        name_and_type: u16,
    },
    NameAndType {
        name: u16,
        descriptor: u16,
    },
    MethodHandle {
        kind: u8,
        reference: u16,
    },
    MethodType(u16),
    Dynamic {
        bootstrap: u16,
        name_and_type: u16,
    },
    InvokeDynamic {
        bootstrap: u16,
        name_and_type: u16,
    },
    Module(u16),
    Package(u16),
}

impl Constant {
    /// Long and double take two pool slots.
    pub fn is_wide(&self) -> bool {
        matches!(self, Constant::Long(_) | Constant::Double(_))
    }
    fn tag(&self) -> u8 {
        match self {
            Constant::Utf8(_) => 1,
            Constant::Integer(_) => 3,
            Constant::Float(_) => 4,
            Constant::Long(_) => 5,
            Constant::Double(_) => 6,
            Constant::Class(_) => 7,
            Constant::String(_) => 8,
            Constant::FieldRef { .. } => 9,
            Constant::MethodRef { .. } => 10,
            Constant::InterfaceMethodRef { .. } => 11,
            Constant::NameAndType { .. } => 12,
            Constant::MethodHandle { .. } => 15,
            Constant::MethodType(_) => 16,
            Constant::Dynamic { .. } => 17,
            Constant::InvokeDynamic { .. } => 18,
            Constant::Module(_) => 19,
            Constant::Package(_) => 20,
        }
    }
}

/// A resolved member reference: owner class, name and descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef<'a> {
    pub class: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub descriptor: Cow<'a, str>,
}

#[derive(Clone, Default)]
pub struct ConstantPool {
    /// Slot 0 and the second slot of a long/double are `None`.
    entries: Vec<Option<Constant>>,
    /// Entry indices by content, built on first insertion: reading never pays for it.
    index: Option<HashTable<u16>>,
    /// Additions made by scanning, before the index is built.
    scans: u8,
    /// The last constants added (found or appended) and their indices: transforms add the same
    /// few constants again for every method they edit, and these are answered without a scan
    /// or an index of the whole pool.
    recent: Vec<(Constant, u16)>,
}

/// How many recent additions [`ConstantPool::add`] remembers.
const RECENT: usize = 16;

impl std::fmt::Debug for ConstantPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

fn hash_of(c: &Constant) -> u64 {
    FxBuildHasher.hash_one(c)
}

impl ConstantPool {
    pub fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let count = r.u16()? as usize;
        if count == 0 {
            return Err(Error::malformed("constant pool", "count is 0"));
        }
        let mut entries = Vec::with_capacity(count);
        entries.push(None);
        while entries.len() < count {
            let i = entries.len();
            let tag = r.u8()?;
            let c = match tag {
                1 => {
                    let n = r.u16()? as usize;
                    Constant::Utf8(r.bytes(n)?.to_vec())
                }
                3 => Constant::Integer(r.i32()?),
                4 => Constant::Float(r.u32()?),
                5 => Constant::Long(((r.u32()? as u64) << 32 | r.u32()? as u64) as i64),
                6 => Constant::Double((r.u32()? as u64) << 32 | r.u32()? as u64),
                7 => Constant::Class(r.u16()?),
                8 => Constant::String(r.u16()?),
                9 => Constant::FieldRef { class: r.u16()?, name_and_type: r.u16()? },
                10 => Constant::MethodRef { class: r.u16()?, name_and_type: r.u16()? },
                11 => Constant::InterfaceMethodRef { class: r.u16()?, name_and_type: r.u16()? },
                12 => Constant::NameAndType { name: r.u16()?, descriptor: r.u16()? },
                15 => Constant::MethodHandle { kind: r.u8()?, reference: r.u16()? },
                16 => Constant::MethodType(r.u16()?),
                17 => Constant::Dynamic { bootstrap: r.u16()?, name_and_type: r.u16()? },
                18 => Constant::InvokeDynamic { bootstrap: r.u16()?, name_and_type: r.u16()? },
                19 => Constant::Module(r.u16()?),
                20 => Constant::Package(r.u16()?),
                t => return Err(Error::malformed(format!("constant pool entry {i}"), format!("unknown tag {t}"))),
            };
            let wide = c.is_wide();
            entries.push(Some(c));
            if wide {
                if entries.len() >= count {
                    return Err(Error::malformed(format!("constant pool entry {i}"), "long/double in the last slot"));
                }
                entries.push(None);
            }
        }
        Ok(Self { entries, index: None, scans: 0, recent: Vec::new() })
    }

    pub fn write(&self, w: &mut Writer) {
        w.u16(self.entries.len() as u16);
        for c in self.entries.iter().flatten() {
            w.u8(c.tag());
            match c {
                Constant::Utf8(b) => {
                    w.u16(b.len() as u16);
                    w.bytes(b);
                }
                Constant::Integer(v) => w.u32(*v as u32),
                Constant::Float(v) => w.u32(*v),
                Constant::Long(v) => {
                    w.u32((*v as u64 >> 32) as u32);
                    w.u32(*v as u32);
                }
                Constant::Double(v) => {
                    w.u32((v >> 32) as u32);
                    w.u32(*v as u32);
                }
                Constant::Class(i)
                | Constant::String(i)
                | Constant::MethodType(i)
                | Constant::Module(i)
                | Constant::Package(i) => w.u16(*i),
                Constant::FieldRef { class, name_and_type }
                | Constant::MethodRef { class, name_and_type }
                | Constant::InterfaceMethodRef { class, name_and_type } => {
                    w.u16(*class);
                    w.u16(*name_and_type);
                }
                Constant::NameAndType { name, descriptor } => {
                    w.u16(*name);
                    w.u16(*descriptor);
                }
                Constant::MethodHandle { kind, reference } => {
                    w.u8(*kind);
                    w.u16(*reference);
                }
                Constant::Dynamic { bootstrap, name_and_type }
                | Constant::InvokeDynamic { bootstrap, name_and_type } => {
                    w.u16(*bootstrap);
                    w.u16(*name_and_type);
                }
            }
        }
    }

    /// Number of slots including slot 0 (the class file's `constant_pool_count`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.len() <= 1
    }

    /// Iterates `(index, constant)` over the live entries.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &Constant)> {
        self.entries.iter().enumerate().filter_map(|(i, c)| c.as_ref().map(|c| (i as u16, c)))
    }

    pub fn get(&self, index: u16) -> Result<&Constant> {
        self.entries
            .get(index as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::malformed(format!("constant pool index {index}"), "no such entry"))
    }

    /// The string of a `Utf8` entry.
    pub fn utf8(&self, index: u16) -> Result<Cow<'_, str>> {
        match self.get(index)? {
            Constant::Utf8(b) => {
                mutf8::decode(b).map_err(|e| Error::malformed(format!("constant pool entry {index}"), e))
            }
            other => Err(wrong_kind(index, "Utf8", other)),
        }
    }

    /// The internal name of a `Class` entry (`java/lang/String`, or `[I` for arrays).
    pub fn class_name(&self, index: u16) -> Result<Cow<'_, str>> {
        match self.get(index)? {
            Constant::Class(n) => self.utf8(*n),
            other => Err(wrong_kind(index, "Class", other)),
        }
    }

    pub fn name_and_type(&self, index: u16) -> Result<(Cow<'_, str>, Cow<'_, str>)> {
        match self.get(index)? {
            Constant::NameAndType { name, descriptor } => Ok((self.utf8(*name)?, self.utf8(*descriptor)?)),
            other => Err(wrong_kind(index, "NameAndType", other)),
        }
    }

    /// A field, method or interface-method reference.
    pub fn member_ref(&self, index: u16) -> Result<MemberRef<'_>> {
        match self.get(index)? {
            Constant::FieldRef { class, name_and_type }
            | Constant::MethodRef { class, name_and_type }
            | Constant::InterfaceMethodRef { class, name_and_type } => {
                let (name, descriptor) = self.name_and_type(*name_and_type)?;
                Ok(MemberRef { class: self.class_name(*class)?, name, descriptor })
            }
            other => Err(wrong_kind(index, "member reference", other)),
        }
    }

    /// Name and descriptor of an `InvokeDynamic`/`Dynamic` entry, with its bootstrap index.
    pub fn dynamic(&self, index: u16) -> Result<(u16, Cow<'_, str>, Cow<'_, str>)> {
        match self.get(index)? {
            Constant::Dynamic { bootstrap, name_and_type } | Constant::InvokeDynamic { bootstrap, name_and_type } => {
                let (n, d) = self.name_and_type(*name_and_type)?;
                Ok((*bootstrap, n, d))
            }
            other => Err(wrong_kind(index, "Dynamic/InvokeDynamic", other)),
        }
    }

    /// Adds `c` unless an equal entry exists; returns its index.
    pub fn add(&mut self, c: Constant) -> Result<u16> {
        if let Some(&(_, i)) = self.recent.iter().find(|(r, _)| *r == c) {
            return Ok(i);
        }
        let i = self.add_new(c.clone())?;
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push((c, i));
        Ok(i)
    }

    /// [`ConstantPool::add`] of a constant not among the recent ones.
    fn add_new(&mut self, c: Constant) -> Result<u16> {
        // A few additions (the common edit) are cheaper as scans than as an index of the pool.
        if self.index.is_none() && self.scans < 8 {
            self.scans += 1;
            if let Some(i) = self.entries.iter().position(|e| e.as_ref() == Some(&c)) {
                return Ok(i as u16);
            }
            return self.push(c);
        }
        let entries = &self.entries;
        let index = self.index.get_or_insert_with(|| {
            let mut t = HashTable::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                if let Some(e) = e {
                    let h = hash_of(e);
                    // Keep the first of duplicate entries, as a lookup would find it.
                    if t.find(h, |&j: &u16| entries[j as usize].as_ref() == Some(e)).is_none() {
                        t.insert_unique(h, i as u16, |&j: &u16| {
                            hash_of(entries[j as usize].as_ref().expect("indexed"))
                        });
                    }
                }
            }
            t
        });
        let h = hash_of(&c);
        if let Some(&i) = index.find(h, |&j| entries[j as usize].as_ref() == Some(&c)) {
            return Ok(i);
        }
        let i = self.push(c)?;
        let (entries, index) = (&self.entries, self.index.as_mut().expect("built above"));
        index.insert_unique(h, i, |&j| hash_of(entries[j as usize].as_ref().expect("indexed")));
        Ok(i)
    }

    /// Appends `c` without looking for an equal entry (the caller did).
    fn push(&mut self, c: Constant) -> Result<u16> {
        let i = self.entries.len();
        let needed = i + if c.is_wide() { 2 } else { 1 };
        if needed > u16::MAX as usize {
            return Err(Error::limit("constant pool", "more than 65535 entries"));
        }
        let wide = c.is_wide();
        self.entries.push(Some(c));
        if wide {
            self.entries.push(None);
        }
        Ok(i as u16)
    }

    /// Whether entry `index` is the `Utf8` string `s` (compared as stored, without decoding).
    pub fn is_utf8(&self, index: u16, s: &str) -> bool {
        matches!(self.entries.get(index as usize), Some(Some(Constant::Utf8(b))) if b == s.as_bytes() || (!s.is_ascii() && *b == mutf8::encode(s)))
    }

    pub fn add_utf8(&mut self, s: &str) -> Result<u16> {
        let b = mutf8::encode(s);
        if b.len() > u16::MAX as usize {
            return Err(Error::limit("constant pool", format!("string of {} bytes exceeds 65535", b.len())));
        }
        self.add(Constant::Utf8(b))
    }
    pub fn add_class(&mut self, internal_name: &str) -> Result<u16> {
        let n = self.add_utf8(internal_name)?;
        self.add(Constant::Class(n))
    }
    pub fn add_string(&mut self, s: &str) -> Result<u16> {
        let n = self.add_utf8(s)?;
        self.add(Constant::String(n))
    }
    pub fn add_name_and_type(&mut self, name: &str, descriptor: &str) -> Result<u16> {
        let name = self.add_utf8(name)?;
        let descriptor = self.add_utf8(descriptor)?;
        self.add(Constant::NameAndType { name, descriptor })
    }
    pub fn add_method_ref(&mut self, class: &str, name: &str, descriptor: &str) -> Result<u16> {
        let class = self.add_class(class)?;
        let name_and_type = self.add_name_and_type(name, descriptor)?;
        self.add(Constant::MethodRef { class, name_and_type })
    }
    pub fn add_interface_method_ref(&mut self, class: &str, name: &str, descriptor: &str) -> Result<u16> {
        let class = self.add_class(class)?;
        let name_and_type = self.add_name_and_type(name, descriptor)?;
        self.add(Constant::InterfaceMethodRef { class, name_and_type })
    }
    pub fn add_field_ref(&mut self, class: &str, name: &str, descriptor: &str) -> Result<u16> {
        let class = self.add_class(class)?;
        let name_and_type = self.add_name_and_type(name, descriptor)?;
        self.add(Constant::FieldRef { class, name_and_type })
    }
}

fn wrong_kind(index: u16, wanted: &str, found: &Constant) -> Error {
    Error::malformed(format!("constant pool index {index}"), format!("expected {wanted}, found tag {}", found.tag()))
}
