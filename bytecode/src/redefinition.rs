//! Would JVMTI `RedefineClasses` accept `new` as a replacement of the loaded `old`, and if not,
//! every reason why.
//!
//! The rules are HotSpot's (`compare_and_normalize_class_versions` in jvmtiRedefineClasses.cpp
//! and the class-attribute checks it calls), reported in the order HotSpot checks them, so the
//! first one is the error the JVM would give. Method bodies, the constant pool and every other
//! attribute may change freely.

use crate::bytes::Reader;
use crate::classfile::{
    ClassFile, Member, ACC_ABSTRACT, ACC_BRIDGE, ACC_FINAL, ACC_INTERFACE, ACC_NATIVE, ACC_PRIVATE, ACC_PROTECTED,
    ACC_PUBLIC, ACC_STATIC, ACC_SYNCHRONIZED, ACC_SYNTHETIC, ACC_VARARGS,
};
use crate::descriptor::parse_field;
use crate::error::{Error, Result};

/// One reason the JVM would refuse `new` as a redefinition of `old`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// What it is about, dotted: `class com.x.A`, `method com.x.A.run(I)V`, `field com.x.A.count`.
    pub member: String,
    /// Why, as one sentence an operator can act on.
    pub reason: String,
}

/// Every reason the JVM would refuse `new` as a redefinition of `old`; empty when it would accept.
pub fn incompatibilities(old: &[u8], new: &[u8]) -> Result<Vec<Incompatibility>> {
    let (a, b) = (ClassFile::parse(old)?, ClassFile::parse(new)?);
    let mut r = Report { class: dotted(&a.name()?), list: Vec::new() };
    if a.name()? != b.name()? {
        // Nothing else is comparable between two different classes.
        r.class(format!("the new bytes define {}: redefinition must keep the class name", dotted(&b.name()?)));
        return Ok(r.list);
    }
    hierarchy(&a, &b, &mut r)?;
    class_attributes(&a, &b, &mut r)?;
    let mask = |f: u16| f & CLASS_MODIFIERS;
    if mask(a.access) != mask(b.access) {
        // ACC_SUPER is on every javac class: name it only when it is what changed.
        let shown = if (a.access ^ b.access) & ACC_SUPER != 0 { CLASS_MODIFIERS } else { CLASS_MODIFIERS & !ACC_SUPER };
        let (from, to) = (words(a.access & shown, CLASS_WORDS), words(b.access & shown, CLASS_WORDS));
        r.class(format!("modifiers change from {from} to {to}: redefinition cannot change them"));
    }
    fields(&a, &b, &mut r)?;
    methods(&a, &b, &mut r)?;
    Ok(r.list)
}

/// `Ok` when the JVM would accept `new` as a redefinition of `old`; otherwise the first
/// [`incompatibilities`] entry as a `Refused` error.
pub fn check_redefinable(old: &[u8], new: &[u8]) -> Result<()> {
    match incompatibilities(old, new)?.into_iter().next() {
        Some(i) => Err(Error::refused(i.member, i.reason)),
        None => Ok(()),
    }
}

struct Report {
    class: String,
    list: Vec<Incompatibility>,
}

impl Report {
    fn push(&mut self, member: String, reason: String) {
        self.list.push(Incompatibility { member, reason });
    }
    fn class(&mut self, reason: String) {
        self.push(format!("class {}", self.class), reason);
    }
    fn field(&mut self, name: &str, reason: String) {
        self.push(format!("field {}.{name}", self.class), reason);
    }
    fn method(&mut self, name: &str, desc: &str, reason: String) {
        self.push(format!("method {}.{name}{desc}", self.class), reason);
    }
}

const ACC_SUPER: u16 = 0x0020;
const ACC_ANNOTATION: u16 = 0x2000;
const ACC_ENUM: u16 = 0x4000;
/// HotSpot's JVM_RECOGNIZED_CLASS_MODIFIERS and JVM_RECOGNIZED_FIELD_MODIFIERS: other bits are
/// dropped when a class is loaded, so they cannot differ.
const CLASS_MODIFIERS: u16 = 0x7631;
const FIELD_MODIFIERS: u16 = 0x50df;

/// Java's modifier order, then the flags without a keyword.
const CLASS_WORDS: &[(u16, &str)] = &[
    (ACC_PUBLIC, "public"),
    (ACC_ABSTRACT, "abstract"),
    (ACC_FINAL, "final"),
    (ACC_SYNTHETIC, "synthetic"),
    (ACC_ANNOTATION, "annotation"),
    (ACC_ENUM, "enum"),
    (ACC_INTERFACE, "interface"),
    (ACC_SUPER, "ACC_SUPER"),
];
const FIELD_WORDS: &[(u16, &str)] = &[
    (ACC_PUBLIC, "public"),
    (ACC_PROTECTED, "protected"),
    (ACC_PRIVATE, "private"),
    (ACC_STATIC, "static"),
    (ACC_FINAL, "final"),
    (0x0080, "transient"),
    (0x0040, "volatile"),
    (ACC_SYNTHETIC, "synthetic"),
    (ACC_ENUM, "enum"),
];
const METHOD_WORDS: &[(u16, &str)] = &[
    (ACC_PUBLIC, "public"),
    (ACC_PROTECTED, "protected"),
    (ACC_PRIVATE, "private"),
    (ACC_ABSTRACT, "abstract"),
    (ACC_STATIC, "static"),
    (ACC_FINAL, "final"),
    (ACC_SYNCHRONIZED, "synchronized"),
    (ACC_NATIVE, "native"),
    (0x0800, "strictfp"),
    (ACC_SYNTHETIC, "synthetic"),
    (ACC_BRIDGE, "bridge"),
    (ACC_VARARGS, "varargs"),
];

/// `access` in words, `package-private` when no access keyword applies.
fn words(access: u16, table: &[(u16, &str)]) -> String {
    let mut w: Vec<&str> = table.iter().filter(|(bit, _)| access & bit != 0).map(|(_, s)| *s).collect();
    if access & (ACC_PUBLIC | ACC_PROTECTED | ACC_PRIVATE) == 0 {
        w.insert(0, "package-private");
    }
    w.join(" ")
}

fn dotted(internal: &str) -> String {
    internal.replace('/', ".")
}

fn java_type(desc: &str) -> String {
    parse_field(desc).map(|t| t.java_name()).unwrap_or_else(|_| desc.to_string())
}

fn list(names: &[&String]) -> String {
    names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// Entries of `a` missing from `b`.
fn minus<'a>(a: &'a [String], b: &[String]) -> Vec<&'a String> {
    a.iter().filter(|x| !b.contains(x)).collect()
}

fn hierarchy(a: &ClassFile, b: &ClassFile, r: &mut Report) -> Result<()> {
    let sup = |c: &ClassFile| -> Result<String> { Ok(c.super_name()?.map_or("none".into(), |s| dotted(&s))) };
    let (sa, sb) = (sup(a)?, sup(b)?);
    if sa != sb {
        r.class(format!("the superclass changes from {sa} to {sb}: redefinition cannot change the hierarchy"));
    }
    let interfaces = |c: &ClassFile| -> Result<Vec<String>> {
        c.interfaces.iter().map(|&i| Ok(dotted(&c.pool.class_name(i)?))).collect()
    };
    let (ia, ib) = (interfaces(a)?, interfaces(b)?);
    if ia == ib {
        return Ok(());
    }
    let (gained, lost) = (minus(&ib, &ia), minus(&ia, &ib));
    let mut parts = Vec::new();
    if !gained.is_empty() {
        parts.push(format!("now implements {}", list(&gained)));
    }
    if !lost.is_empty() {
        parts.push(format!("no longer implements {}", list(&lost)));
    }
    if parts.is_empty() {
        // HotSpot compares the interfaces in declaration order.
        let (from, to) = (ia.join(", "), ib.join(", "));
        r.class(format!("the interfaces change order from {from} to {to}: redefinition needs the same order"));
    } else {
        r.class(format!("the class {}: redefinition cannot change the hierarchy", parts.join(" and ")));
    }
    Ok(())
}

/// The class names a `NestHost`, `NestMembers` or `PermittedSubclasses` attribute lists; empty
/// when absent.
fn class_list(c: &ClassFile, name: &str) -> Result<Vec<String>> {
    let Some(attr) = c.find_attribute(&c.attributes, name) else { return Ok(Vec::new()) };
    let mut rd = Reader::new(&attr.data, "class attribute");
    let n = if name == "NestHost" { 1 } else { rd.u16()? };
    (0..n).map(|_| Ok(dotted(&c.pool.class_name(rd.u16()?)?))).collect()
}

/// The `Record` attribute's components as `type name`, or `None` when the class is no record.
fn record(c: &ClassFile) -> Result<Option<Vec<String>>> {
    let Some(attr) = c.find_attribute(&c.attributes, "Record") else { return Ok(None) };
    let mut rd = Reader::new(&attr.data, "Record attribute");
    let mut components = Vec::new();
    for _ in 0..rd.u16()? {
        let (name, desc) = (c.pool.utf8(rd.u16()?)?, c.pool.utf8(rd.u16()?)?);
        let mut text = format!("{} {name}", java_type(&desc));
        for _ in 0..rd.u16()? {
            let (attr_name, len) = (rd.u16()?, rd.u32()? as usize);
            let data = rd.bytes(len)?;
            // HotSpot also compares a component's generic signature.
            if c.pool.is_utf8(attr_name, "Signature") && len == 2 {
                text += &format!(" (signature {})", c.pool.utf8(u16::from_be_bytes([data[0], data[1]]))?);
            }
        }
        components.push(text);
    }
    Ok(Some(components))
}

fn class_attributes(a: &ClassFile, b: &ClassFile, r: &mut Report) -> Result<()> {
    let (ha, hb) = (class_list(a, "NestHost")?, class_list(b, "NestHost")?);
    match (ha.first(), hb.first()) {
        (Some(x), Some(y)) if x != y => {
            r.class(format!("NestHost changes from {x} to {y}: redefinition cannot move a class to another nest"))
        }
        (None, Some(y)) => r.class(format!("NestHost {y} is added: redefinition cannot move a class into a nest")),
        (Some(x), None) => r.class(format!("NestHost {x} is removed: redefinition cannot take a class out of a nest")),
        _ => {}
    }
    let (ma, mb) = (class_list(a, "NestMembers")?, class_list(b, "NestMembers")?);
    let (gained, lost) = (minus(&mb, &ma), minus(&ma, &mb));
    if !gained.is_empty() {
        let what = if gained.len() == 1 { "a new nested class" } else { "new nested classes" };
        r.class(format!("NestMembers gains {}: {what}, which redefinition cannot add to the nest", list(&gained)));
    }
    if !lost.is_empty() {
        let what = if lost.len() == 1 { "a removed nested class" } else { "removed nested classes" };
        r.class(format!("NestMembers loses {}: {what}, which redefinition cannot drop from the nest", list(&lost)));
    }
    match (record(a)?, record(b)?) {
        (Some(x), Some(y)) if x != y => r.class(format!(
            "Record components change from ({}) to ({}): redefinition cannot change a record's components",
            x.join(", "),
            y.join(", ")
        )),
        (None, Some(_)) => r.class("the Record attribute is added: redefinition cannot make a class a record".into()),
        (Some(_), None) => r.class("the Record attribute is removed: redefinition cannot unmake a record".into()),
        _ => {}
    }
    let (pa, pb) = (class_list(a, "PermittedSubclasses")?, class_list(b, "PermittedSubclasses")?);
    for (changed, how) in [(minus(&pb, &pa), "gains"), (minus(&pa, &pb), "loses")] {
        if !changed.is_empty() {
            r.class(format!(
                "PermittedSubclasses {how} {}: redefinition cannot change which subclasses a sealed class permits",
                list(&changed)
            ));
        }
    }
    Ok(())
}

/// A field's or method's name, descriptor and access flags.
struct Sig {
    name: String,
    desc: String,
    access: u16,
}

fn sigs(c: &ClassFile, members: &[Member]) -> Result<Vec<Sig>> {
    members
        .iter()
        .map(|m| {
            Ok(Sig {
                name: c.member_name(m)?.into_owned(),
                desc: c.member_descriptor(m)?.into_owned(),
                access: m.access,
            })
        })
        .collect()
}

/// HotSpot wants the same fields in the same order: each difference is reported by field name,
/// then any reordering of the fields both versions have.
fn fields(a: &ClassFile, b: &ClassFile, r: &mut Report) -> Result<()> {
    let (old, new) = (sigs(a, &a.fields)?, sigs(b, &b.fields)?);
    for o in &old {
        let Some(n) = new.iter().find(|n| n.name == o.name) else {
            r.field(&o.name, "would be removed: redefinition cannot remove a field".into());
            continue;
        };
        if n.desc != o.desc {
            let (from, to) = (java_type(&o.desc), java_type(&n.desc));
            r.field(&o.name, format!("type changes from {from} to {to}: redefinition cannot change a field's type"));
        }
        if (o.access ^ n.access) & FIELD_MODIFIERS != 0 {
            let (from, to) =
                (words(o.access & FIELD_MODIFIERS, FIELD_WORDS), words(n.access & FIELD_MODIFIERS, FIELD_WORDS));
            r.field(&o.name, format!("modifiers change from {from} to {to}: redefinition cannot change them"));
        }
    }
    for n in new.iter().filter(|n| !old.iter().any(|o| o.name == n.name)) {
        r.field(&n.name, "would be added: redefinition cannot add a field".into());
    }
    let kept = |from: &[Sig], other: &[Sig]| -> Vec<String> {
        from.iter().filter(|s| other.iter().any(|t| t.name == s.name)).map(|s| s.name.clone()).collect()
    };
    let (ka, kb) = (kept(&old, &new), kept(&new, &old));
    if ka != kb {
        let (from, to) = (ka.join(", "), kb.join(", "));
        r.class(format!(
            "the fields change order from {from} to {to}: redefinition needs the fields in the same order"
        ));
    }
    Ok(())
}

/// The method whose lambda `s` is, when `s` is a javac lambda body `lambda$<method>$<n>`.
fn lambda_of(s: &Sig) -> Option<&str> {
    if s.access & ACC_PRIVATE == 0 || s.access & (ACC_STATIC | ACC_SYNTHETIC) == 0 {
        return None;
    }
    let (method, n) = s.name.strip_prefix("lambda$")?.rsplit_once('$')?;
    let numbered = !method.is_empty() && !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit());
    numbered.then_some(match method {
        "new" => "<init>",
        "static" => "<clinit>",
        m => m,
    })
}

/// Methods are matched by name and descriptor, in any order. Lambda bodies are reported by
/// enclosing method, since their names come from javac's numbering, not from the source.
fn methods(a: &ClassFile, b: &ClassFile, r: &mut Report) -> Result<()> {
    let (old, new) = (sigs(a, &a.methods)?, sigs(b, &b.methods)?);
    let find = |list: &'_ [Sig], s: &Sig| list.iter().position(|t| t.name == s.name && t.desc == s.desc);
    for o in &old {
        let Some(n) = find(&new, o).map(|i| &new[i]) else { continue };
        // HotSpot lets ACC_NATIVE change, for native method prefixes.
        if (o.access ^ n.access) & !ACC_NATIVE != 0 {
            let (from, to) = (words(o.access, METHOD_WORDS), words(n.access, METHOD_WORDS));
            r.method(
                &o.name,
                &o.desc,
                format!("modifiers change from {from} to {to}: redefinition cannot change them"),
            );
        }
    }
    let removed: Vec<&Sig> = old.iter().filter(|o| find(&new, o).is_none()).collect();
    let added: Vec<&Sig> = new.iter().filter(|n| find(&old, n).is_none()).collect();
    let plain = |list: &[&Sig], name: &str| -> usize {
        list.iter().filter(|s| s.name == name && lambda_of(s).is_none()).count()
    };
    // One overload swapped for another of the same name reads as one signature change.
    let retyped = |name: &str| plain(&removed, name) == 1 && plain(&added, name) == 1;
    for o in removed.iter().filter(|o| lambda_of(o).is_none()) {
        if retyped(&o.name) {
            let n = added.iter().find(|n| n.name == o.name && lambda_of(n).is_none()).map_or("", |n| n.desc.as_str());
            let reason = format!("signature changes from {} to {n}: redefinition cannot change a signature", o.desc);
            r.method(&o.name, &o.desc, reason);
        } else {
            r.method(&o.name, &o.desc, "would be removed: redefinition cannot remove a method".into());
        }
    }
    for n in added.iter().filter(|n| lambda_of(n).is_none() && !retyped(&n.name)) {
        r.method(&n.name, &n.desc, "would be added: redefinition cannot add a method".into());
    }
    lambdas(&removed, &added, r);
    Ok(())
}

/// One report per enclosing method whose lambda bodies were added, removed or renumbered.
fn lambdas<'s>(removed: &[&'s Sig], added: &[&'s Sig], r: &mut Report) {
    let mut enclosing: Vec<&str> = Vec::new();
    for m in removed.iter().chain(added).filter_map(|s| lambda_of(s)) {
        if !enclosing.contains(&m) {
            enclosing.push(m);
        }
    }
    for method in enclosing {
        let of = |list: &[&'s Sig]| -> Vec<&'s Sig> {
            list.iter().copied().filter(|s| lambda_of(s) == Some(method)).collect()
        };
        let (gone, came) = (of(removed), of(added));
        // A descriptor found once on each side is the same lambda under a new number.
        let unique = |list: &[&Sig], d: &str| list.iter().filter(|s| s.desc == d).count() == 1;
        let pair = |g: &Sig| {
            (unique(&gone, &g.desc) && unique(&came, &g.desc)).then(|| came.iter().find(|c| c.desc == g.desc)).flatten()
        };
        let mut parts = Vec::new();
        for g in &gone {
            match pair(g) {
                Some(c) => parts.push(format!("{} is now {}", g.name, c.name)),
                None => parts.push(format!("{} is gone", g.name)),
            }
        }
        for c in came.iter().filter(|c| !gone.iter().any(|g| pair(g).is_some_and(|p| std::ptr::eq(*p, **c)))) {
            parts.push(format!("{} is a new lambda", c.name));
        }
        let reason = if gone.is_empty() {
            format!(
                "its lambdas change ({}): each lambda body is a method, which redefinition cannot add, and javac \
                 numbers a method's lambdas in source order, so one inserted before others also renames them; \
                 restart with the new build",
                parts.join("; ")
            )
        } else {
            format!(
                "its lambdas are renumbered ({}): javac numbers a method's lambdas in source order, so adding, \
                 removing or moving one renames the others, and the lambda objects the running build already \
                 created call the old method names, which this redefinition would remove; keep the existing \
                 lambdas in the same order in the source (a lambda added after them is still a new method, \
                 which needs a restart) or restart with the new build",
                parts.join("; ")
            )
        };
        r.push(format!("method {}.{method}", r.class), reason);
    }
}
