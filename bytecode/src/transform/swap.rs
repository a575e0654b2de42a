//! `swap`: replaces a method's body with the body of the same method in a patch class compiled
//! from fixed source. Every constant the body uses is copied into the target's pool (bootstrap
//! methods for lambdas and string concatenation too), and references to the patch class are
//! renamed to the target. A body that needs a member the target lacks (e.g. a lambda's synthetic
//! method) is refused: `RedefineClasses` cannot add members.

use std::collections::HashMap;
use std::sync::Arc;

use super::SwapSpec;
use crate::bytes::{Reader, Writer};
use crate::classfile::{Attribute, ClassFile, ACC_ABSTRACT, ACC_NATIVE, ACC_STATIC};
use crate::code::{Code, CodeAttribute, Insn, MethodInfo, VType};
use crate::constant_pool::Constant;
use crate::error::{Error, Result};

pub fn swap(class: &[u8], spec: &SwapSpec) -> Result<Vec<u8>> {
    let mut target = ClassFile::parse(class)?;
    let patch = ClassFile::parse(&spec.patch_class).map_err(|e| e.within("patch class"))?;
    let target_name = target.name()?.into_owned();
    let patch_name = patch.name()?.into_owned();
    let ti = target.find_method(&spec.method.name, spec.method.descriptor.as_deref())?;
    let descriptor = target.member_descriptor(&target.methods[ti])?.into_owned();
    let context = format!("method {}.{}{descriptor}", target_name.replace('/', "."), spec.method.name);
    let pi = patch.find_method(&spec.method.name, Some(&descriptor)).map_err(|e| e.within("patch class"))?;
    let (tm, pm) = (&target.methods[ti], &patch.methods[pi]);
    if tm.access & (ACC_ABSTRACT | ACC_NATIVE) != 0 {
        return Err(Error::refused(context, "is abstract or native: it has no body to swap"));
    }
    if tm.access & ACC_STATIC != pm.access & ACC_STATIC {
        return Err(Error::refused(context, "is static in one class and not in the other"));
    }
    let patch_info =
        MethodInfo { class: &patch_name, name: &spec.method.name, descriptor: &descriptor, access: pm.access };
    let code_attr = patch
        .find_attribute(&pm.attributes, "Code")
        .ok_or_else(|| Error::refused(&context, "the patch class's method has no body"))?;
    let mut code = Code::decode(&code_attr.data, &patch.pool, &patch_info).map_err(|e| e.within("patch class"))?;

    let mut remap = Remap {
        patch: &patch,
        target: &mut target,
        patch_name: &patch_name,
        target_name: &target_name,
        done: HashMap::new(),
        bootstraps: None,
    };
    for insn in &mut code.insns {
        match insn {
            Insn::Ldc { index, .. }
            | Insn::Cp { index, .. }
            | Insn::InvokeInterface { index, .. }
            | Insn::InvokeDynamic { index }
            | Insn::MultiANewArray { index, .. } => {
                *index = remap.constant(*index).map_err(|e| e.within(&context))?;
            }
            _ => {}
        }
    }
    for h in &mut code.handlers {
        if h.catch_type != 0 {
            h.catch_type = remap.constant(h.catch_type)?;
        }
    }
    let mut attributes = Vec::with_capacity(code.attributes.len());
    for (name, a) in std::mem::take(&mut code.attributes) {
        let a = match a {
            CodeAttribute::StackMapTable(mut frames) => {
                for (_, f) in &mut frames {
                    for t in f.locals.iter_mut().chain(f.stack.iter_mut()) {
                        if let VType::Object(n) = t {
                            if **n == *patch_name {
                                *t = VType::Object(Arc::from(target_name.as_str()));
                            }
                        }
                    }
                }
                CodeAttribute::StackMapTable(frames)
            }
            CodeAttribute::LocalVariables(mut vars) => {
                for v in &mut vars {
                    v.name = remap.constant(v.name)?;
                    v.descriptor = remap.constant(v.descriptor)?;
                }
                CodeAttribute::LocalVariables(vars)
            }
            CodeAttribute::LocalVariableTypes(mut vars) => {
                for v in &mut vars {
                    v.name = remap.constant(v.name)?;
                    v.descriptor = remap.constant(v.descriptor)?;
                }
                CodeAttribute::LocalVariableTypes(vars)
            }
            CodeAttribute::LineNumbers(l) => CodeAttribute::LineNumbers(l),
            // Type annotations and unknown attributes carry pool indices inside opaque bytes:
            // dropped rather than copied wrong (they do not affect execution).
            CodeAttribute::TypeAnnotations(_) | CodeAttribute::Other(_) => continue,
        };
        attributes.push((remap.constant(name)?, a));
    }
    code.attributes = attributes;
    let bootstraps = remap.bootstraps.take();

    if let Some(list) = bootstraps {
        let name = target.pool.add_utf8("BootstrapMethods")?;
        let mut w = Writer::default();
        w.len16(list.len(), "BootstrapMethods")?;
        for (method, args) in &list {
            w.u16(*method);
            w.len16(args.len(), "bootstrap arguments")?;
            for a in args {
                w.u16(*a);
            }
        }
        let data = w.into_inner();
        match target.attribute_position(&target.attributes, "BootstrapMethods") {
            Some(i) => target.attributes[i].data = data,
            None => target.attributes.push(Attribute { name, data }),
        }
    }

    let target_info = MethodInfo {
        class: &target_name,
        name: &spec.method.name,
        descriptor: &descriptor,
        access: target.methods[ti].access,
    };
    let data = code.encode(&mut target.pool, &target_info).map_err(|e| e.within(&context))?;
    let at = target
        .attribute_position(&target.methods[ti].attributes, "Code")
        .ok_or_else(|| Error::malformed(&context, "no Code attribute"))?;
    target.methods[ti].attributes[at].data = data;
    target.to_bytes()
}

type Bootstrap = (u16, Vec<u16>);

struct Remap<'a> {
    patch: &'a ClassFile,
    target: &'a mut ClassFile,
    patch_name: &'a str,
    target_name: &'a str,
    done: HashMap<u16, u16>,
    /// The target's bootstrap methods, read on first use and extended.
    bootstraps: Option<Vec<Bootstrap>>,
}

impl Remap<'_> {
    fn rename(&self, s: &str) -> String {
        if s == self.patch_name {
            return self.target_name.to_string();
        }
        s.replace(&format!("L{};", self.patch_name), &format!("L{};", self.target_name))
    }

    /// Copies patch pool entry `i` (and what it refers to) into the target pool.
    fn constant(&mut self, i: u16) -> Result<u16> {
        if let Some(&j) = self.done.get(&i) {
            return Ok(j);
        }
        let c = self.patch.pool.get(i)?.clone();
        let copied = match c {
            Constant::Utf8(_) => {
                let s = self.patch.pool.utf8(i)?;
                let renamed = self.rename(&s);
                self.target.pool.add_utf8(&renamed)?
            }
            Constant::Integer(_) | Constant::Float(_) | Constant::Long(_) | Constant::Double(_) => {
                self.target.pool.add(c)?
            }
            Constant::Class(n) => {
                let c = Constant::Class(self.constant(n)?);
                self.target.pool.add(c)?
            }
            Constant::String(n) => {
                // String contents are data: copied as they are, never renamed.
                let s = self.patch.pool.utf8(n)?.into_owned();
                self.target.pool.add_string(&s)?
            }
            Constant::MethodType(n) => {
                let c = Constant::MethodType(self.constant(n)?);
                self.target.pool.add(c)?
            }
            Constant::Module(_) | Constant::Package(_) => {
                return Err(Error::refused("patch class", "module constants in a method body"))
            }
            Constant::NameAndType { name, descriptor } => {
                let c = Constant::NameAndType { name: self.constant(name)?, descriptor: self.constant(descriptor)? };
                self.target.pool.add(c)?
            }
            Constant::FieldRef { class, name_and_type }
            | Constant::MethodRef { class, name_and_type }
            | Constant::InterfaceMethodRef { class, name_and_type } => {
                self.check_member(i)?;
                let (class, name_and_type) = (self.constant(class)?, self.constant(name_and_type)?);
                self.target.pool.add(match c {
                    Constant::FieldRef { .. } => Constant::FieldRef { class, name_and_type },
                    Constant::MethodRef { .. } => Constant::MethodRef { class, name_and_type },
                    _ => Constant::InterfaceMethodRef { class, name_and_type },
                })?
            }
            Constant::MethodHandle { kind, reference } => {
                let c = Constant::MethodHandle { kind, reference: self.constant(reference)? };
                self.target.pool.add(c)?
            }
            Constant::Dynamic { bootstrap, name_and_type } | Constant::InvokeDynamic { bootstrap, name_and_type } => {
                let b = self.bootstrap(bootstrap)?;
                let nat = self.constant(name_and_type)?;
                self.target.pool.add(match c {
                    Constant::Dynamic { .. } => Constant::Dynamic { bootstrap: b, name_and_type: nat },
                    _ => Constant::InvokeDynamic { bootstrap: b, name_and_type: nat },
                })?
            }
        };
        self.done.insert(i, copied);
        Ok(copied)
    }

    /// A reference to a member of the patch class must name a member the target has.
    fn check_member(&self, i: u16) -> Result<()> {
        let r = self.patch.pool.member_ref(i)?;
        if r.class != self.patch_name {
            return Ok(());
        }
        let descriptor = self.rename(&r.descriptor);
        let is_field = matches!(self.patch.pool.get(i)?, Constant::FieldRef { .. });
        let members = if is_field { &self.target.fields } else { &self.target.methods };
        let found = members
            .iter()
            .any(|m| self.target.pool.is_utf8(m.name, &r.name) && self.target.pool.is_utf8(m.descriptor, &descriptor));
        if found {
            return Ok(());
        }
        let what = if is_field { "field" } else { "method" };
        Err(Error::refused(
            "swap",
            format!(
                "the patch body uses {what} {}{} which the target class {} lacks: redefinition cannot add a {what}",
                r.name,
                if is_field { String::new() } else { descriptor },
                self.target_name.replace('/', ".")
            ),
        ))
    }

    /// Copies bootstrap method `b` of the patch class into the target's table; returns its index.
    fn bootstrap(&mut self, b: u16) -> Result<u16> {
        let patch_table = read_bootstraps(self.patch)?;
        let (method, args) = patch_table
            .get(b as usize)
            .cloned()
            .ok_or_else(|| Error::malformed("patch class", format!("no bootstrap method {b}")))?;
        let method = self.constant(method)?;
        let args = args.into_iter().map(|a| self.constant(a)).collect::<Result<Vec<_>>>()?;
        if self.bootstraps.is_none() {
            self.bootstraps = Some(read_bootstraps(self.target)?);
        }
        let table = self.bootstraps.as_mut().expect("read above");
        let entry = (method, args);
        if let Some(i) = table.iter().position(|e| *e == entry) {
            return Ok(i as u16);
        }
        table.push(entry);
        u16::try_from(table.len() - 1).map_err(|_| Error::limit("BootstrapMethods", "more than 65535 entries"))
    }
}

fn read_bootstraps(cf: &ClassFile) -> Result<Vec<Bootstrap>> {
    let Some(a) = cf.find_attribute(&cf.attributes, "BootstrapMethods") else { return Ok(Vec::new()) };
    let mut r = Reader::new(&a.data, "BootstrapMethods");
    let n = r.u16()?;
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let m = r.u16()?;
        let k = r.u16()?;
        let mut args = Vec::with_capacity(k as usize);
        for _ in 0..k {
            args.push(r.u16()?);
        }
        v.push((m, args));
    }
    Ok(v)
}
