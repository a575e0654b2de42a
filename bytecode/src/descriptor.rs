//! Field and method descriptors (JVMS 4.3).

use crate::error::{Error, Result};

/// A field type, or a method's return type (`Void` only there).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldType {
    Byte,
    Char,
    Double,
    Float,
    Int,
    Long,
    Short,
    Boolean,
    /// Internal name of a class.
    Object(String),
    /// The whole array descriptor, e.g. `[I` or `[Ljava/lang/String;`.
    Array(String),
    Void,
}

impl FieldType {
    /// Local-variable/stack slots taken.
    pub fn size(&self) -> usize {
        match self {
            FieldType::Long | FieldType::Double => 2,
            FieldType::Void => 0,
            _ => 1,
        }
    }
    pub fn is_reference(&self) -> bool {
        matches!(self, FieldType::Object(_) | FieldType::Array(_))
    }
    /// The descriptor text of this type.
    pub fn descriptor(&self) -> String {
        match self {
            FieldType::Byte => "B".into(),
            FieldType::Char => "C".into(),
            FieldType::Double => "D".into(),
            FieldType::Float => "F".into(),
            FieldType::Int => "I".into(),
            FieldType::Long => "J".into(),
            FieldType::Short => "S".into(),
            FieldType::Boolean => "Z".into(),
            FieldType::Object(n) => format!("L{n};"),
            FieldType::Array(d) => d.clone(),
            FieldType::Void => "V".into(),
        }
    }
    /// Java source spelling, for messages and disassembly.
    pub fn java_name(&self) -> String {
        match self {
            FieldType::Byte => "byte".into(),
            FieldType::Char => "char".into(),
            FieldType::Double => "double".into(),
            FieldType::Float => "float".into(),
            FieldType::Int => "int".into(),
            FieldType::Long => "long".into(),
            FieldType::Short => "short".into(),
            FieldType::Boolean => "boolean".into(),
            FieldType::Void => "void".into(),
            FieldType::Object(n) => n.replace('/', "."),
            FieldType::Array(d) => {
                let dims = d.bytes().take_while(|&b| b == b'[').count();
                let elem = parse_field(&d[dims..]).map(|t| t.java_name()).unwrap_or_else(|_| d.clone());
                format!("{elem}{}", "[]".repeat(dims))
            }
        }
    }
}

/// A parsed method descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodDescriptor {
    pub params: Vec<FieldType>,
    pub ret: FieldType,
}

impl MethodDescriptor {
    pub fn parse(d: &str) -> Result<Self> {
        let bad = |why: &str| Error::malformed(format!("method descriptor {d:?}"), why.to_string());
        let rest = d.strip_prefix('(').ok_or_else(|| bad("does not start with '('"))?;
        let close = rest.find(')').ok_or_else(|| bad("no ')'"))?;
        let mut params = Vec::new();
        let mut p = &rest[..close];
        while !p.is_empty() {
            let (t, n) = parse_one(p).map_err(|_| bad("bad parameter type"))?;
            if t == FieldType::Void {
                return Err(bad("void parameter"));
            }
            params.push(t);
            p = &p[n..];
        }
        let r = &rest[close + 1..];
        let (ret, n) = parse_one(r).map_err(|_| bad("bad return type"))?;
        if n != r.len() {
            return Err(bad("trailing characters"));
        }
        Ok(Self { params, ret })
    }

    /// Slots taken by the parameters (without `this`).
    pub fn param_slots(&self) -> usize {
        self.params.iter().map(FieldType::size).sum()
    }
}

/// Parses a whole field descriptor.
pub fn parse_field(d: &str) -> Result<FieldType> {
    match parse_one(d) {
        Ok((t, n)) if n == d.len() && t != FieldType::Void => Ok(t),
        _ => Err(Error::malformed(format!("field descriptor {d:?}"), "not a valid type")),
    }
}

/// Parses one type at the start of `s`; returns it and its length.
fn parse_one(s: &str) -> std::result::Result<(FieldType, usize), ()> {
    let b = s.as_bytes();
    let t = match b.first().ok_or(())? {
        b'B' => FieldType::Byte,
        b'C' => FieldType::Char,
        b'D' => FieldType::Double,
        b'F' => FieldType::Float,
        b'I' => FieldType::Int,
        b'J' => FieldType::Long,
        b'S' => FieldType::Short,
        b'Z' => FieldType::Boolean,
        b'V' => FieldType::Void,
        b'L' => {
            let end = s.find(';').ok_or(())?;
            if end < 2 {
                return Err(());
            }
            return Ok((FieldType::Object(s[1..end].to_string()), end + 1));
        }
        b'[' => {
            let dims = b.iter().take_while(|&&c| c == b'[').count();
            if dims > 255 {
                return Err(());
            }
            let (elem, n) = parse_one(&s[dims..])?;
            if elem == FieldType::Void {
                return Err(());
            }
            return Ok((FieldType::Array(s[..dims + n].to_string()), dims + n));
        }
        _ => return Err(()),
    };
    Ok((t, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_method_descriptors() {
        let d = MethodDescriptor::parse("(IJ[Ljava/lang/String;Ljava/util/List;)[[D").unwrap();
        assert_eq!(d.params.len(), 4);
        assert_eq!(d.param_slots(), 5);
        assert_eq!(d.ret, FieldType::Array("[[D".into()));
        assert_eq!(d.ret.java_name(), "double[][]");
        assert!(MethodDescriptor::parse("(V)V").is_err());
        assert!(MethodDescriptor::parse("()").is_err());
        assert!(MethodDescriptor::parse("(L;)V").is_err());
    }
}
