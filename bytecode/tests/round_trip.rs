//! Round trip over real class files: every class that `ristretto_classfile` parses must be
//! written back byte-identical, and every method body decoded and re-encoded unchanged must
//! give the same `Code` bytes.

use std::path::{Path, PathBuf};

use repair_bytecode::archive::{jars_in, read_archive};
use repair_bytecode::code::{Code, MethodInfo};
use repair_bytecode::ClassFile;

#[derive(Default, Debug)]
struct Tally {
    classes: usize,
    ristretto_rejects: usize,
    identical: usize,
    methods: usize,
    code_identical: usize,
    code_equivalent: usize,
    failures: Vec<String>,
}

fn corpus() -> Vec<PathBuf> {
    let mut paths = jars_in(Path::new("/usr/share/java"));
    let java_home = std::env::var("JAVA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64"));
    let base = java_home.join("jmods/java.base.jmod");
    if base.exists() {
        paths.push(base);
    } else {
        println!("skipping java.base: {} not found", base.display());
    }
    paths
}

fn check_class(bytes: &[u8], t: &mut Tally, name: &str) {
    t.classes += 1;
    if ristretto_classfile::ClassFile::from_bytes(bytes).is_err() {
        t.ristretto_rejects += 1;
        return;
    }
    let class = match ClassFile::parse(bytes) {
        Ok(c) => c,
        Err(e) => {
            t.failures.push(format!("{name}: parse: {e}"));
            return;
        }
    };
    match class.to_bytes() {
        Ok(out) if out == bytes => t.identical += 1,
        Ok(_) => t.failures.push(format!("{name}: written bytes differ")),
        Err(e) => t.failures.push(format!("{name}: write: {e}")),
    }
    let class_name = class.name().unwrap().into_owned();
    for m in &class.methods {
        let Some(code_attr) = class.find_attribute(&m.attributes, "Code") else { continue };
        t.methods += 1;
        let mname = class.member_name(m).unwrap();
        let desc = class.member_descriptor(m).unwrap();
        let info = MethodInfo { class: &class_name, name: &mname, descriptor: &desc, access: m.access };
        let mut pool = class.pool.clone();
        let result =
            Code::decode(&code_attr.data, &class.pool, &info).and_then(|c| Ok((c.encode(&mut pool, &info)?, c)));
        match result {
            Ok((out, _)) if out == code_attr.data => t.code_identical += 1,
            Ok((out, before)) => {
                // Only the StackMapTable may be spelled differently (javac does not always pick the
                // most compact frame form); what it says must be the same.
                let after = Code::decode(&out, &pool, &info).expect("re-encoded code decodes");
                let code_len = 8 + u32::from_be_bytes(out[4..8].try_into().unwrap()) as usize;
                if out[..code_len] != code_attr.data[..code_len]
                    || after.insns != before.insns
                    || after.handlers != before.handlers
                    || after.attributes != before.attributes
                {
                    t.failures.push(format!("{name}.{mname}{desc}: re-encoded Code differs"));
                } else {
                    t.code_equivalent += 1;
                }
            }
            Err(e) => t.failures.push(format!("{name}.{mname}{desc}: {e}")),
        }
    }
}

#[test]
fn every_parsable_class_round_trips_byte_identical() {
    let mut t = Tally::default();
    for path in corpus() {
        let entries = match read_archive(&path) {
            Ok(e) => e,
            Err(e) => {
                println!("skipping {e}");
                continue;
            }
        };
        for e in entries.iter().filter(|e| e.name.ends_with(".class")) {
            check_class(&e.bytes, &mut t, &format!("{}!{}", path.display(), e.name));
        }
    }
    println!(
        "classes={} ristretto_rejects={} identical={} methods={} code_identical={} code_equivalent={} failures={}",
        t.classes,
        t.ristretto_rejects,
        t.identical,
        t.methods,
        t.code_identical,
        t.code_equivalent,
        t.failures.len()
    );
    for f in t.failures.iter().take(20) {
        println!("FAIL {f}");
    }
    assert!(t.classes > 1000, "corpus too small: {} classes", t.classes);
    assert!(t.failures.is_empty(), "{} failures", t.failures.len());
    assert_eq!(t.identical + t.ristretto_rejects, t.classes);
}
