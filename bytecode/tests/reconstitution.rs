//! A class as HotSpot reconstitutes it (methods reordered, pool entries appended, debug
//! attributes rebuilt) is recognised as its class file; a changed body or modifier is not.

mod support;

use repair_bytecode::reconstitution::is_class_file;
use repair_bytecode::ClassFile;

#[test]
fn a_reconstituted_class_is_its_file_and_a_changed_one_is_not() {
    let dir = support::scratch("reconstitution");
    let classes = support::javac(
        &dir,
        &[(
            "R.java",
            "public class R { static final int K = 3; int a(int x) { return x + K; } int b() { return 7; } }",
        )],
    );
    let file = std::fs::read(classes.join("R.class")).unwrap();
    let mut c = ClassFile::parse(&file).unwrap();
    c.methods.reverse();
    c.pool.add_utf8("java/lang/AbstractMethodError").unwrap();
    for m in &mut c.methods {
        m.attributes.retain(|a| !c.pool.is_utf8(a.name, "MethodParameters"));
    }
    let jvm = c.to_bytes().unwrap();
    assert_ne!(jvm, file);
    assert!(is_class_file(&jvm, &file).unwrap());
    assert!(!is_class_file(&file, &jvm).unwrap(), "a pool cannot be a prefix of a shorter one");

    // One byte of a body (`bipush 7` → `bipush 6`): another class.
    let mut code = ClassFile::parse(&jvm).unwrap();
    let b = code.methods.iter_mut().find(|m| code.pool.is_utf8(m.name, "b")).unwrap();
    let attr = b.attributes.iter_mut().find(|a| code.pool.is_utf8(a.name, "Code")).unwrap();
    let bipush = attr.data[8..].iter().position(|&op| op == 0x10).unwrap() + 8;
    attr.data[bipush + 1] = 6;
    assert!(!is_class_file(&code.to_bytes().unwrap(), &file).unwrap());

    let mut access = ClassFile::parse(&jvm).unwrap();
    access.methods[1].access ^= repair_bytecode::classfile::ACC_FINAL;
    assert!(!is_class_file(&access.to_bytes().unwrap(), &file).unwrap());
    let mut field = ClassFile::parse(&jvm).unwrap();
    field.fields[0].access ^= repair_bytecode::classfile::ACC_STATIC;
    assert!(!is_class_file(&field.to_bytes().unwrap(), &file).unwrap());
}
