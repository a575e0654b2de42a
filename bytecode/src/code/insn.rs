//! Instructions with symbolic labels instead of offsets.

use super::opcodes::*;

/// A position in the code, bound by an [`Insn::Label`] in the instruction list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(pub u32);

/// One instruction. Each variant keeps the opcode as written (e.g. `iload_1` stays `Op`,
/// `ldc_w` stays `ldc_w`), so unedited code encodes to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insn {
    /// Binds a label here (not an instruction; no bytes).
    Label(Label),
    /// An instruction without operands (including the `xload_n`/`xstore_n` short forms).
    Op(u8),
    Bipush(i8),
    Sipush(i16),
    /// `ldc`, `ldc_w` or `ldc2_w`.
    Ldc {
        op: u8,
        index: u16,
    },
    /// `xload`, `xstore` or `ret` with an explicit index; `wide` forces the wide form.
    Local {
        op: u8,
        index: u16,
        wide: bool,
    },
    Iinc {
        index: u16,
        delta: i16,
        wide: bool,
    },
    /// Any branch: `if*`, `goto`, `jsr`, `goto_w`, `jsr_w`, `ifnull`, `ifnonnull`.
    Branch {
        op: u8,
        target: Label,
    },
    TableSwitch {
        default: Label,
        low: i32,
        targets: Vec<Label>,
    },
    LookupSwitch {
        default: Label,
        pairs: Vec<(i32, Label)>,
    },
    /// Field access, `invokevirtual/special/static`, `new`, `anewarray`, `checkcast`, `instanceof`.
    Cp {
        op: u8,
        index: u16,
    },
    InvokeInterface {
        index: u16,
        count: u8,
    },
    InvokeDynamic {
        index: u16,
    },
    MultiANewArray {
        index: u16,
        dims: u8,
    },
    /// `newarray` with its primitive type code.
    NewArray(u8),
}

impl Insn {
    /// The opcode, or `None` for a label.
    pub fn opcode(&self) -> Option<u8> {
        Some(match self {
            Insn::Label(_) => return None,
            Insn::Op(op) => *op,
            Insn::Bipush(_) => BIPUSH,
            Insn::Sipush(_) => SIPUSH,
            Insn::Ldc { op, .. } | Insn::Local { op, .. } | Insn::Branch { op, .. } | Insn::Cp { op, .. } => *op,
            Insn::Iinc { .. } => IINC,
            Insn::TableSwitch { .. } => TABLESWITCH,
            Insn::LookupSwitch { .. } => LOOKUPSWITCH,
            Insn::InvokeInterface { .. } => INVOKEINTERFACE,
            Insn::InvokeDynamic { .. } => INVOKEDYNAMIC,
            Insn::MultiANewArray { .. } => MULTIANEWARRAY,
            Insn::NewArray(_) => NEWARRAY,
        })
    }

    /// True when control never falls through to the next instruction.
    pub fn ends_block(&self) -> bool {
        match self {
            Insn::Op(op) => matches!(*op, IRETURN..=RETURN | ATHROW),
            Insn::Branch { op, .. } => matches!(*op, GOTO | GOTO_W),
            Insn::Local { op, .. } => *op == RET,
            Insn::TableSwitch { .. } | Insn::LookupSwitch { .. } => true,
            _ => false,
        }
    }

    /// Labels this instruction may jump to.
    pub fn targets(&self) -> Vec<Label> {
        match self {
            Insn::Branch { target, .. } => vec![*target],
            Insn::TableSwitch { default, targets, .. } => {
                std::iter::once(*default).chain(targets.iter().copied()).collect()
            }
            Insn::LookupSwitch { default, pairs } => {
                std::iter::once(*default).chain(pairs.iter().map(|p| p.1)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The load instruction for a local of the given return-type kind.
    pub fn load(kind: ValueKind, index: u16) -> Insn {
        Insn::Local { op: kind.load_op(), index, wide: false }
    }
    pub fn store(kind: ValueKind, index: u16) -> Insn {
        Insn::Local { op: kind.load_op() + (ISTORE - ILOAD), index, wide: false }
    }
}

/// The computational kind of a value, which picks the typed instruction variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Int,
    Long,
    Float,
    Double,
    Reference,
}

impl ValueKind {
    pub fn of(t: &crate::descriptor::FieldType) -> Option<ValueKind> {
        use crate::descriptor::FieldType as F;
        Some(match t {
            F::Byte | F::Char | F::Short | F::Boolean | F::Int => ValueKind::Int,
            F::Long => ValueKind::Long,
            F::Float => ValueKind::Float,
            F::Double => ValueKind::Double,
            F::Object(_) | F::Array(_) => ValueKind::Reference,
            F::Void => return None,
        })
    }
    pub fn load_op(self) -> u8 {
        match self {
            ValueKind::Int => ILOAD,
            ValueKind::Long => LLOAD,
            ValueKind::Float => FLOAD,
            ValueKind::Double => DLOAD,
            ValueKind::Reference => ALOAD,
        }
    }
    pub fn return_op(self) -> u8 {
        match self {
            ValueKind::Int => IRETURN,
            ValueKind::Long => LRETURN,
            ValueKind::Float => FRETURN,
            ValueKind::Double => DRETURN,
            ValueKind::Reference => ARETURN,
        }
    }
    /// The instruction pushing this kind's default value (0, 0L, 0f, 0d, null).
    pub fn default_value(self) -> Insn {
        Insn::Op(match self {
            ValueKind::Int => ICONST_0,
            ValueKind::Long => LCONST_0,
            ValueKind::Float => FCONST_0,
            ValueKind::Double => DCONST_0,
            ValueKind::Reference => ACONST_NULL,
        })
    }
    pub fn slots(self) -> u16 {
        match self {
            ValueKind::Long | ValueKind::Double => 2,
            _ => 1,
        }
    }
}
