//! The class hierarchy that type merges ask: offline from jars, later from the live JVM.

use std::collections::HashMap;
use std::path::Path;

use crate::archive::read_archive;
use crate::classfile::ClassFile;

/// What type inference needs to know about classes it has not seen.
pub trait Hierarchy {
    /// The superclass's internal name; `None` for `java/lang/Object`, interfaces' `Object`
    /// included, or a class this hierarchy does not know.
    fn super_class(&self, class: &str) -> Option<String>;
    fn is_interface(&self, class: &str) -> bool;
}

/// Knows nothing: every class extends `java/lang/Object` directly. Merges of two different
/// classes give `Object`, which the verifier accepts wherever the merged value is only passed on.
pub struct ObjectHierarchy;

impl Hierarchy for ObjectHierarchy {
    fn super_class(&self, class: &str) -> Option<String> {
        (class != "java/lang/Object").then(|| "java/lang/Object".to_string())
    }
    fn is_interface(&self, _: &str) -> bool {
        false
    }
}

/// Class headers read from jars, jmods or class files.
#[derive(Default)]
pub struct ClasspathHierarchy {
    /// Internal name → (superclass, is interface).
    classes: HashMap<String, (Option<String>, bool)>,
}

impl ClasspathHierarchy {
    /// Reads the header of every class in `archives` (the first definition of a name wins).
    pub fn from_archives<P: AsRef<Path>>(archives: &[P]) -> Result<Self, String> {
        let mut h = ClasspathHierarchy::default();
        for a in archives {
            for e in read_archive(a.as_ref())?.into_iter().filter(|e| e.name.ends_with(".class")) {
                h.add(&e.bytes);
            }
        }
        Ok(h)
    }

    /// Adds one class's header; bytes that do not parse are skipped.
    pub fn add(&mut self, class: &[u8]) {
        let Ok(cf) = ClassFile::parse(class) else { return };
        let (Ok(name), Ok(sup)) = (cf.name(), cf.super_name()) else { return };
        self.classes.entry(name.into_owned()).or_insert((sup.map(|s| s.into_owned()), cf.is_interface()));
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

impl Hierarchy for ClasspathHierarchy {
    fn super_class(&self, class: &str) -> Option<String> {
        match self.classes.get(class) {
            Some((s, _)) => s.clone(),
            None => ObjectHierarchy.super_class(class),
        }
    }
    fn is_interface(&self, class: &str) -> bool {
        self.classes.get(class).is_some_and(|(_, i)| *i)
    }
}

/// The most specific common superclass of two reference types, as the verifier merges them:
/// interfaces merge to `Object`, arrays of references elementwise, other arrays to `Object`.
pub fn common_super_class(h: &dyn Hierarchy, a: &str, b: &str) -> String {
    if a == b {
        return a.to_string();
    }
    match (a.strip_prefix('['), b.strip_prefix('[')) {
        (Some(ea), Some(eb)) => {
            let is_ref = |e: &str| e.starts_with('L') || e.starts_with('[');
            if is_ref(ea) && is_ref(eb) {
                let name = |e: &str| if e.starts_with('L') { e[1..e.len() - 1].to_string() } else { e.to_string() };
                let c = common_super_class(h, &name(ea), &name(eb));
                return if c.starts_with('[') { format!("[{c}") } else { format!("[L{c};") };
            }
            return "java/lang/Object".into();
        }
        (None, None) => {}
        _ => return "java/lang/Object".into(),
    }
    if h.is_interface(a) || h.is_interface(b) {
        return "java/lang/Object".into();
    }
    let chain = |mut c: String| {
        let mut v = vec![c.clone()];
        while let Some(s) = h.super_class(&c) {
            if v.len() > 256 || v.contains(&s) {
                break;
            }
            v.push(s.clone());
            c = s;
        }
        v
    };
    let ca = chain(a.to_string());
    chain(b.to_string()).into_iter().find(|c| ca.contains(c)).unwrap_or_else(|| "java/lang/Object".into())
}

/// Whether a value of reference type `from` may be used where `to` is expected, as the verifier
/// judges it: any reference fits an interface, arrays fit elementwise.
pub fn is_assignable(h: &dyn Hierarchy, to: &str, from: &str) -> bool {
    if to == from || to == "java/lang/Object" {
        return true;
    }
    let element =
        |e: &str| if e.starts_with('L') && e.ends_with(';') { e[1..e.len() - 1].to_string() } else { e.to_string() };
    match (to.strip_prefix('['), from.strip_prefix('[')) {
        (Some(t), Some(f)) => {
            let is_ref = |e: &str| e.starts_with('L') || e.starts_with('[');
            if is_ref(t) && is_ref(f) {
                is_assignable(h, &element(t), &element(f))
            } else {
                t == f
            }
        }
        (Some(_), None) => false,
        (None, Some(_)) => h.is_interface(to),
        (None, None) => h.is_interface(to) || common_super_class(h, to, from) == to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_class_chain() {
        let jdk = std::path::PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64/jmods/java.base.jmod");
        let h = if jdk.exists() {
            ClasspathHierarchy::from_archives(&[jdk]).unwrap()
        } else {
            ClasspathHierarchy::default()
        };
        if h.is_empty() {
            println!("skipping: no java.base.jmod");
            return;
        }
        assert_eq!(common_super_class(&h, "java/lang/Integer", "java/lang/Long"), "java/lang/Number");
        assert_eq!(common_super_class(&h, "java/util/ArrayList", "java/util/LinkedList"), "java/util/AbstractList");
        assert_eq!(common_super_class(&h, "java/util/List", "java/util/ArrayList"), "java/lang/Object");
        assert_eq!(common_super_class(&h, "[Ljava/lang/Integer;", "[Ljava/lang/Long;"), "[Ljava/lang/Number;");
        assert_eq!(common_super_class(&h, "[I", "[J"), "java/lang/Object");
        assert!(is_assignable(&h, "java/lang/Number", "java/lang/Integer"));
        assert!(!is_assignable(&h, "java/lang/Integer", "java/lang/Number"));
        assert!(is_assignable(&h, "[Ljava/util/Map$Entry;", "[Ljava/util/AbstractMap$SimpleEntry;"));
        assert!(!is_assignable(&h, "[I", "[J"));
        assert_eq!(common_super_class(&ObjectHierarchy, "a/B", "c/D"), "java/lang/Object");
    }
}
