//! No input makes the reader, the encoder or a transform panic: each bad input is an error.

use std::path::Path;

use proptest::prelude::*;
use repair_bytecode::archive::read_archive;
use repair_bytecode::code::{Code, MethodInfo};
use repair_bytecode::transform::{check_redefinable, guard::guard_all};
use repair_bytecode::ClassFile;

/// Real class files to mutate: a jar every machine with Maven has.
fn seeds() -> Vec<Vec<u8>> {
    let jar = Path::new("/usr/share/java/commons-cli.jar");
    let entries = read_archive(jar).unwrap_or_else(|e| panic!("seed jar: {e}"));
    entries.into_iter().filter(|e| e.is_class()).map(|e| e.bytes).take(40).collect()
}

/// Runs every reader and writer path over `bytes`; any result is fine, a panic is not.
fn exercise(bytes: &[u8]) {
    let Ok(cf) = ClassFile::parse(bytes) else { return };
    let _ = cf.to_bytes();
    if let Ok(name) = cf.name() {
        for m in &cf.methods {
            let (Ok(n), Ok(d)) = (cf.member_name(m), cf.member_descriptor(m)) else { continue };
            let info = MethodInfo { class: &name, name: &n, descriptor: &d, access: m.access };
            if let Some(a) = cf.find_attribute(&m.attributes, "Code") {
                if let Ok(code) = Code::decode(&a.data, &cf.pool, &info) {
                    let mut pool = cf.pool.clone();
                    let _ = code.encode(&mut pool, &info);
                }
            }
        }
    }
    if let Ok((out, _)) = guard_all(bytes) {
        let _ = check_redefinable(bytes, &out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
        let mut with_magic = vec![0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 52];
        with_magic.extend_from_slice(&bytes);
        exercise(&with_magic);
    }

    #[test]
    fn mutated_real_classes_never_panic(
        seed in 0usize..40,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let seeds = SEEDS.with(|s| s.clone());
        let mut bytes = seeds[seed % seeds.len()].clone();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        exercise(&bytes);
    }
}

thread_local! {
    static SEEDS: Vec<Vec<u8>> = seeds();
}

#[test]
fn guard_all_output_is_a_valid_redefinition_of_its_input() {
    for class in seeds() {
        let (out, stats) = guard_all(&class).expect("real class guards");
        check_redefinable(&class, &out).expect("guard_all changes only method bodies");
        assert_eq!(stats.guarded > 0, out != class, "bytes change exactly when a method was guarded");
    }
}

#[test]
fn member_changes_are_refused_with_the_member_named() {
    let class = seeds().into_iter().next().unwrap();
    let cf = ClassFile::parse(&class).unwrap();
    let name = cf.name().unwrap().replace('/', ".");

    let mut added = cf.clone();
    let mut extra = added.methods[0].clone();
    extra.name = added.pool.add_utf8("injected").unwrap();
    added.methods.push(extra);
    let err = check_redefinable(&class, &added.to_bytes().unwrap()).unwrap_err();
    assert!(err.to_string().starts_with(&format!("method {name}.injected(")), "{err}");
    assert!(err.to_string().contains("cannot add a method"), "{err}");

    let mut removed = cf.clone();
    removed.methods.pop();
    let err = check_redefinable(&class, &removed.to_bytes().unwrap()).unwrap_err();
    assert!(err.to_string().contains("cannot remove a method"), "{err}");

    let mut modifiers = cf.clone();
    modifiers.methods[0].access ^= 0x0010;
    let err = check_redefinable(&class, &modifiers.to_bytes().unwrap()).unwrap_err();
    assert!(err.to_string().contains("modifiers change"), "{err}");
}
