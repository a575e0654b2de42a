//! The class-file engine of repair: read, edit and write JVM class files.
//!
//! Reading keeps every attribute as bytes until an edit needs it decoded, so what an edit does not
//! touch is written back byte-identical. `code` decodes a method body into labelled instructions
//! and encodes it again with every offset relocated.

pub mod analysis;
pub mod archive;
pub mod bytes;
pub mod classfile;
pub mod code;
pub mod constant_pool;
pub mod descriptor;
pub mod error;
pub mod hierarchy;
pub mod javap;
pub mod mutf8;
pub mod reconstitution;
pub mod redefinition;
pub mod transform;

pub use classfile::{Attribute, ClassFile, Member};
pub use constant_pool::{Constant, ConstantPool};
pub use error::{Error, ErrorKind, Result};
