//! The class-file container: header, pool, members and attributes. Attributes are kept as raw
//! bytes until an edit decodes one, so whatever is not edited writes back byte-identical.

use std::borrow::Cow;

use crate::bytes::{Reader, Writer};
use crate::constant_pool::ConstantPool;
use crate::error::{Error, Result};

pub const ACC_PUBLIC: u16 = 0x0001;
pub const ACC_PRIVATE: u16 = 0x0002;
pub const ACC_PROTECTED: u16 = 0x0004;
pub const ACC_STATIC: u16 = 0x0008;
pub const ACC_FINAL: u16 = 0x0010;
pub const ACC_SYNCHRONIZED: u16 = 0x0020;
pub const ACC_BRIDGE: u16 = 0x0040;
pub const ACC_VARARGS: u16 = 0x0080;
pub const ACC_NATIVE: u16 = 0x0100;
pub const ACC_INTERFACE: u16 = 0x0200;
pub const ACC_ABSTRACT: u16 = 0x0400;
pub const ACC_SYNTHETIC: u16 = 0x1000;
pub const ACC_MODULE: u16 = 0x8000;

/// An attribute as stored: its name index and undecoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: u16,
    pub data: Vec<u8>,
}

/// A field or method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub access: u16,
    pub name: u16,
    pub descriptor: u16,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone)]
pub struct ClassFile {
    pub minor: u16,
    pub major: u16,
    pub pool: ConstantPool,
    pub access: u16,
    pub this_class: u16,
    pub super_class: u16,
    pub interfaces: Vec<u16>,
    pub fields: Vec<Member>,
    pub methods: Vec<Member>,
    pub attributes: Vec<Attribute>,
}

impl ClassFile {
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "class file");
        let magic = r.u32()?;
        if magic != 0xCAFE_BABE {
            return Err(Error::malformed(
                "class file",
                format!("not a class file: magic is {magic:#010x}, not 0xcafebabe"),
            ));
        }
        let minor = r.u16()?;
        let major = r.u16()?;
        let pool = ConstantPool::parse(&mut r)?;
        let access = r.u16()?;
        let this_class = r.u16()?;
        let super_class = r.u16()?;
        let n = r.u16()? as usize;
        let mut interfaces = Vec::with_capacity(n);
        for _ in 0..n {
            interfaces.push(r.u16()?);
        }
        let fields = parse_members(&mut r)?;
        let methods = parse_members(&mut r)?;
        let attributes = parse_attributes(&mut r)?;
        r.finish()?;
        Ok(Self { minor, major, pool, access, this_class, super_class, interfaces, fields, methods, attributes })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(4096);
        w.u32(0xCAFE_BABE);
        w.u16(self.minor);
        w.u16(self.major);
        if self.pool.len() > u16::MAX as usize {
            return Err(Error::limit("constant pool", "more than 65535 entries"));
        }
        self.pool.write(&mut w);
        w.u16(self.access);
        w.u16(self.this_class);
        w.u16(self.super_class);
        w.len16(self.interfaces.len(), "interfaces")?;
        for i in &self.interfaces {
            w.u16(*i);
        }
        for members in [&self.fields, &self.methods] {
            w.len16(members.len(), "members")?;
            for m in members {
                w.u16(m.access);
                w.u16(m.name);
                w.u16(m.descriptor);
                write_attributes(&mut w, &m.attributes)?;
            }
        }
        write_attributes(&mut w, &self.attributes)?;
        Ok(w.into_inner())
    }

    /// Internal name of this class (`com/shop/PriceService`).
    pub fn name(&self) -> Result<Cow<'_, str>> {
        self.pool.class_name(self.this_class)
    }

    /// Internal name of the superclass; `None` for `java/lang/Object` and `module-info`.
    pub fn super_name(&self) -> Result<Option<Cow<'_, str>>> {
        if self.super_class == 0 {
            Ok(None)
        } else {
            self.pool.class_name(self.super_class).map(Some)
        }
    }

    pub fn is_interface(&self) -> bool {
        self.access & ACC_INTERFACE != 0
    }

    pub fn member_name(&self, m: &Member) -> Result<Cow<'_, str>> {
        self.pool.utf8(m.name)
    }
    pub fn member_descriptor(&self, m: &Member) -> Result<Cow<'_, str>> {
        self.pool.utf8(m.descriptor)
    }

    /// Finds the attribute called `name` among `attrs`.
    pub fn find_attribute<'a>(&self, attrs: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
        attrs.iter().find(|a| self.pool.is_utf8(a.name, name))
    }

    /// Position of the attribute called `name` among `attrs`.
    pub fn attribute_position(&self, attrs: &[Attribute], name: &str) -> Option<usize> {
        attrs.iter().position(|a| self.pool.is_utf8(a.name, name))
    }

    /// Index of the method `name` with `descriptor` (or the only method called `name` when
    /// `descriptor` is `None`).
    pub fn find_method(&self, name: &str, descriptor: Option<&str>) -> Result<usize> {
        let mut found = Vec::new();
        for (i, m) in self.methods.iter().enumerate() {
            if self.member_name(m)? == name
                && descriptor.is_none_or(|d| self.member_descriptor(m).is_ok_and(|md| md == d))
            {
                found.push(i);
            }
        }
        let class = self.name()?.into_owned();
        match found.as_slice() {
            [i] => Ok(*i),
            [] => Err(Error::not_found(
                format!("class {}", class.replace('/', ".")),
                format!("no method {name}{}", descriptor.unwrap_or("")),
            )),
            many => {
                let descs: Vec<String> = many
                    .iter()
                    .map(|&i| self.member_descriptor(&self.methods[i]).map(|d| d.into_owned()).unwrap_or_default())
                    .collect();
                Err(Error::not_found(
                    format!("class {}", class.replace('/', ".")),
                    format!(
                        "method name {name} is overloaded ({}); give the descriptor, e.g. \"{name}{}\"",
                        descs.join(", "),
                        descs[0]
                    ),
                ))
            }
        }
    }
}

fn parse_members(r: &mut Reader<'_>) -> Result<Vec<Member>> {
    let n = r.u16()? as usize;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let access = r.u16()?;
        let name = r.u16()?;
        let descriptor = r.u16()?;
        let attributes = parse_attributes(r)?;
        v.push(Member { access, name, descriptor, attributes });
    }
    Ok(v)
}

pub(crate) fn parse_attributes(r: &mut Reader<'_>) -> Result<Vec<Attribute>> {
    let n = r.u16()? as usize;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.u16()?;
        let len = r.u32()? as usize;
        v.push(Attribute { name, data: r.bytes(len)?.to_vec() });
    }
    Ok(v)
}

pub(crate) fn write_attributes(w: &mut Writer, attrs: &[Attribute]) -> Result<()> {
    w.len16(attrs.len(), "attributes")?;
    for a in attrs {
        w.u16(a.name);
        let len = u32::try_from(a.data.len()).map_err(|_| Error::limit("attribute", "longer than 4 GiB"))?;
        w.u32(len);
        w.bytes(&a.data);
    }
    Ok(())
}
