//! What a probe's hooks hand over: a call's arguments, boxed in an `Object[]` or passed unboxed
//! (`repair_bytecode::transform::hooks::packed`), and each argument or return value, a reference
//! or a primitive.

use repair_bytecode::transform::hooks::packed::{self, Code};
use repair_model::observe::Value;

use super::{Jni, Local, PlainValue};

/// A primitive as a packed hook carries it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Primitive {
    Bool(bool),
    Integer(i64),
    Number(f64),
    Char(u16),
}

impl Primitive {
    /// `raw` as the hook widened a value of type `code`; `None` for a reference's code.
    pub fn from_raw(code: Code, raw: i64) -> Option<Primitive> {
        Some(match code {
            Code::Boolean => Primitive::Bool(raw != 0),
            Code::Byte | Code::Short | Code::Int | Code::Long => Primitive::Integer(raw),
            Code::Char => Primitive::Char(raw as u16),
            Code::Float => Primitive::Number(f32::from_bits(raw as u32).into()),
            Code::Double => Primitive::Number(f64::from_bits(raw as u64)),
            Code::Reference => return None,
        })
    }

    /// Calls `f` with the value as a box of it reads ([`Jni::with_plain`]).
    pub fn with_plain<R>(self, f: impl FnOnce(PlainValue<'_>) -> R) -> R {
        match self {
            Primitive::Bool(b) => f(PlainValue::Bool(b)),
            Primitive::Integer(n) => f(PlainValue::Integer(n)),
            Primitive::Number(n) => f(PlainValue::Number(n)),
            Primitive::Char(c) => f(PlainValue::Text { units: &[c], cut: false }),
        }
    }

    pub fn value(self) -> Value {
        self.with_plain(|p| p.to_value())
    }
}

/// An argument or a return value.
#[derive(Clone, Copy)]
pub enum Captured<'r, 'j> {
    /// A reference, maybe `null`.
    Object(&'r Local<'j>),
    Primitive(Primitive),
}

/// A call's arguments as its entry hook passed them.
pub enum CallArgs<'r, 'j> {
    /// Boxed in an `Object[]`, `this` last when it is captured.
    Boxed(&'r Local<'j>),
    Packed(&'r Packed<'j>),
}

/// The arguments of a packed entry (`Hooks.enterPacked`).
pub struct Packed<'j> {
    codes: [Code; packed::PARAMETERS],
    parameters: usize,
    this: bool,
    primitives: [i64; packed::PRIMITIVES],
    references: [Local<'j>; packed::REFERENCES],
}

impl<'j> Packed<'j> {
    /// `None` for a shape the transform does not make.
    pub fn new(
        shape: i32,
        primitives: [i64; packed::PRIMITIVES],
        references: [Local<'j>; packed::REFERENCES],
    ) -> Option<Packed<'j>> {
        let parameters = packed::parameters(shape)?;
        let mut codes = [Code::Reference; packed::PARAMETERS];
        for (i, c) in codes.iter_mut().enumerate().take(parameters) {
            *c = packed::code(shape, i)?;
        }
        Some(Packed { codes, parameters, this: packed::has_this(shape), primitives, references })
    }
}

/// Most arguments read of a call (`this` aside).
pub const MAX_ARGS: usize = 16;

impl<'j> CallArgs<'_, 'j> {
    /// Calls `f` with the first arguments (at most [`MAX_ARGS`]), each `None` where none could be read,
    /// and `this` when it was captured (`this_captured` says so of a boxed array, whose last
    /// element it then is).
    pub fn read<R>(
        &self,
        jni: &Jni<'j>,
        this_captured: bool,
        f: impl FnOnce(&[Option<Captured<'_, 'j>>], Option<&Local<'j>>) -> R,
    ) -> R {
        match self {
            CallArgs::Boxed(array) => {
                // Freed as the hook returns to Java (at most MAX_ARGS + 1 references, within what
                // a native method may hold).
                let mut elements: [Option<Local<'j>>; MAX_ARGS + 1] = std::array::from_fn(|_| None);
                let len = jni.array_length(array).min(MAX_ARGS + 1);
                for (i, e) in elements.iter_mut().enumerate().take(len) {
                    *e = Some(jni.array_element(array, i));
                }
                let (args, this) = match this_captured && len > 0 {
                    true => (&elements[..len - 1], elements[len - 1].as_ref()),
                    false => (&elements[..len], None),
                };
                let mut captured: [Option<Captured<'_, 'j>>; MAX_ARGS + 1] = [None; MAX_ARGS + 1];
                for (c, e) in captured.iter_mut().zip(args) {
                    *c = e.as_ref().map(Captured::Object);
                }
                f(&captured[..args.len()], this)
            }
            CallArgs::Packed(p) => {
                let mut captured: [Option<Captured<'_, 'j>>; packed::PARAMETERS] = [None; packed::PARAMETERS];
                let (mut primitive, mut reference) = (0, 0);
                for (c, &code) in captured.iter_mut().zip(&p.codes[..p.parameters]) {
                    *c = match code {
                        Code::Reference => {
                            reference += 1;
                            p.references.get(reference - 1).map(Captured::Object)
                        }
                        _ => {
                            primitive += 1;
                            let raw = p.primitives.get(primitive - 1).copied().unwrap_or(0);
                            Primitive::from_raw(code, raw).map(Captured::Primitive)
                        }
                    };
                }
                let this = p.this.then(|| p.references.get(reference)).flatten();
                f(&captured[..p.parameters], this)
            }
        }
    }

    /// The arguments as text, `this` last when captured, as [`Jni::array_text`] writes an array's.
    pub fn text(&self, jni: &Jni<'j>, max: usize) -> String {
        match self {
            CallArgs::Boxed(array) => jni.array_text(array, max),
            CallArgs::Packed(p) => self.read(jni, p.this, |args, this| {
                let mut parts: Vec<String> = args
                    .iter()
                    .take(max)
                    .map(|a| match a {
                        Some(a) => a.value(jni).to_string(),
                        None => "?".to_string(),
                    })
                    .collect();
                parts.extend(this.map(|t| jni.value_text(t)));
                format!("[{}]", parts.join(", "))
            }),
        }
    }
}

impl Captured<'_, '_> {
    /// The value as [`Jni::value`] gives an object's.
    pub fn value(&self, jni: &Jni<'_>) -> Value {
        match self {
            Captured::Object(o) => jni.value(o),
            Captured::Primitive(p) => p.value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_read_back_as_their_boxes_would() {
        let p = |code, raw| Primitive::from_raw(code, raw).unwrap().value();
        assert_eq!(p(Code::Int, -7), Value::Integer(-7));
        assert_eq!(p(Code::Long, i64::MAX), Value::Integer(i64::MAX));
        assert_eq!(p(Code::Boolean, 1), Value::Bool(true));
        assert_eq!(p(Code::Char, 'é' as i64), Value::Text("é".into()));
        // A float's raw bits sign-extended, as `floatToRawIntBits` then `i2l` leave them.
        assert_eq!(p(Code::Float, (-1.5f32).to_bits() as i32 as i64), Value::Number(-1.5));
        assert_eq!(p(Code::Double, 0.1f64.to_bits() as i64), Value::Number(0.1));
        assert_eq!(Primitive::from_raw(Code::Reference, 0), None);
    }
}
