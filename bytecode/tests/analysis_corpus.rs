//! The type inference against javac: run without the `StackMapTable`, the types it infers must
//! fit every frame javac wrote (javac's declared types may be wider than ours), and its maximum
//! stack depth must equal javac's `max_stack`.

use std::path::{Path, PathBuf};

use repair_bytecode::analysis::{Analysis, State};
use repair_bytecode::archive::read_archive;
use repair_bytecode::code::{Code, Insn, MethodInfo, VType};
use repair_bytecode::hierarchy::{is_assignable, ClasspathHierarchy, Hierarchy};
use repair_bytecode::ClassFile;

fn fits(h: &dyn Hierarchy, declared: &VType, ours: &VType) -> bool {
    match (declared, ours) {
        (VType::Top, _) => true,
        (VType::Object(_), VType::Null) => true,
        (VType::Object(d), VType::Object(o)) => is_assignable(h, d, o),
        (d, o) => d == o,
    }
}

#[test]
fn inferred_types_fit_javacs_frames() {
    let java_base = PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64/jmods/java.base.jmod");
    let mut jars: Vec<PathBuf> = ["commons-lang3.jar", "commons-io.jar", "guava.jar"]
        .iter()
        .map(|j| Path::new("/usr/share/java").join(j))
        .filter(|p| p.exists())
        .collect();
    let mut hierarchy_sources = jars.clone();
    if java_base.exists() {
        hierarchy_sources.push(java_base.clone());
        jars.push(java_base);
    }
    let h = ClasspathHierarchy::from_archives(&hierarchy_sources).unwrap();
    let (mut methods, mut frames_checked, mut mismatches, mut max_stack_diffs, mut refused) =
        (0, 0, Vec::new(), Vec::new(), 0);
    for jar in &jars {
        for e in read_archive(jar).unwrap().into_iter().filter(|e| e.is_class()).take(4000) {
            let cf = ClassFile::parse(&e.bytes).unwrap();
            if cf.major < 50 {
                continue;
            }
            let class = cf.name().unwrap().into_owned();
            for m in &cf.methods {
                let Some(code_attr) = cf.find_attribute(&m.attributes, "Code") else { continue };
                let (name, desc) = (cf.member_name(m).unwrap(), cf.member_descriptor(m).unwrap());
                let info = MethodInfo { class: &class, name: &name, descriptor: &desc, access: m.access };
                let code = Code::decode(&code_attr.data, &cf.pool, &info).unwrap();
                methods += 1;
                let a = match Analysis::run_with(&code, &cf.pool, &info, &h, false) {
                    Ok(a) => a,
                    Err(err) if err.kind == repair_bytecode::ErrorKind::Refused => {
                        refused += 1;
                        continue;
                    }
                    Err(err) => panic!("{class}.{name}{desc}: {err}"),
                };
                if a.max_stack != code.max_stack as usize {
                    max_stack_diffs
                        .push(format!("{class}.{name}{desc}: ours {} javac {}", a.max_stack, code.max_stack));
                }
                let Some(frames) = code.frames() else { continue };
                for (label, f) in frames {
                    let i = code.insns.iter().position(|x| *x == Insn::Label(*label)).unwrap();
                    frames_checked += 1;
                    let declared = State::from_frame(f, code.max_locals as usize);
                    let ok = match &a.states[i] {
                        None => false,
                        Some(ours) => {
                            ours.stack.len() == declared.stack.len()
                                && declared.stack.iter().zip(&ours.stack).all(|(d, o)| fits(&h, d, o))
                                && declared.locals.iter().zip(&ours.locals).all(|(d, o)| fits(&h, d, o))
                        }
                    };
                    if !ok {
                        mismatches.push(format!(
                            "{class}.{name}{desc} at label {}: javac {f:?} ours {:?}",
                            label.0, a.states[i]
                        ));
                    }
                }
            }
        }
    }
    println!(
        "methods={methods} frames_checked={frames_checked} mismatches={} max_stack_diffs={} refused={refused}",
        mismatches.len(),
        max_stack_diffs.len()
    );
    for m in mismatches.iter().chain(&max_stack_diffs).take(10) {
        println!("  {m}");
    }
    assert!(methods > 1000, "too few methods: {methods}");
    assert!(mismatches.is_empty());
    assert!(max_stack_diffs.is_empty());
}
