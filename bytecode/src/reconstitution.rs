//! Whether bytes a JVM hands back for a loaded class are a given class file.
//!
//! HotSpot keeps a class's original bytes only when an agent changed the class as it loaded.
//! Otherwise a retransformation hands agents bytes *reconstituted* from the loaded class: the
//! same constant pool indices (the bytecodes still point into it) with entries the JVM added
//! appended, methods in the JVM's own order, debug and other attributes rebuilt. Those bytes
//! differ from the file the class came from although the class is the same, so a byte comparison
//! would call an unchanged class changed.

use crate::classfile::{ClassFile, Member};
use crate::error::Result;

/// Whether `jvm` (bytes a retransformation handed over) is the class `file`: byte-identical, or
/// its reconstitution: `file`'s constant pool is a prefix of `jvm`'s, and the header, the fields
/// in order, and the methods (in any order) with their code and exception tables are the same.
pub fn is_class_file(jvm: &[u8], file: &[u8]) -> Result<bool> {
    if jvm == file {
        return Ok(true);
    }
    let (j, f) = (ClassFile::parse(jvm)?, ClassFile::parse(file)?);
    if f.pool.len() > j.pool.len() || f.pool.iter().any(|(i, c)| j.pool.get(i).ok() != Some(c)) {
        return Ok(false);
    }
    let header = |c: &ClassFile| (c.access, c.this_class, c.super_class, c.interfaces.clone());
    if header(&j) != header(&f) || j.fields.len() != f.fields.len() || j.methods.len() != f.methods.len() {
        return Ok(false);
    }
    let constant_value = |c: &ClassFile, m: &Member| {
        m.attributes.iter().find(|a| c.pool.is_utf8(a.name, "ConstantValue")).map(|a| a.data.clone())
    };
    for (a, b) in j.fields.iter().zip(&f.fields) {
        if (a.access, a.name, a.descriptor) != (b.access, b.name, b.descriptor)
            || constant_value(&j, a) != constant_value(&f, b)
        {
            return Ok(false);
        }
    }
    for m in &f.methods {
        let Some(other) = j.methods.iter().find(|o| (o.name, o.descriptor) == (m.name, m.descriptor)) else {
            return Ok(false);
        };
        if other.access != m.access || body(&j, other) != body(&f, m) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A method's `Code` without its nested attributes (line numbers, frames, local names, which the
/// JVM rebuilds): max stack and locals, the bytecode and the exception table.
fn body<'c>(c: &ClassFile, m: &'c Member) -> Option<&'c [u8]> {
    let code = &m.attributes.iter().find(|a| c.pool.is_utf8(a.name, "Code"))?.data;
    let code_len = u32::from_be_bytes(code.get(4..8)?.try_into().ok()?) as usize;
    let table_at = 8 + code_len;
    let entries = u16::from_be_bytes(code.get(table_at..table_at + 2)?.try_into().ok()?) as usize;
    code.get(..table_at + 2 + 8 * entries)
}
