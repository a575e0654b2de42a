//! Branches pushed past ±32 KiB by an edit are widened (`goto_w`, or an inverted condition over
//! a `goto_w` with a new stack map frame), and HotSpot verifies and runs the result.

mod support;

use repair_bytecode::code::opcodes::{GOTO_W, NOP};
use repair_bytecode::code::{Code, Insn, MethodInfo};
use repair_bytecode::ClassFile;

#[test]
fn an_edit_that_overflows_a_branch_widens_it() {
    // A conditional jumping over ~31 KB of straight-line code, inside a loop (a backward goto).
    let body: String = (0..7800).map(|_| "s += i;\n").collect();
    let src = format!(
        "public class Big {{\n static int f(int n) {{ int s = 0; for (int i = 0; i < n; i++) {{ if (i % 2 == 0) {{ {body} }} s++; }} return s; }}\n public static void main(String[] a) {{ System.out.println(f(5)); }}\n}}\n"
    );
    let dir = support::scratch("widening");
    let classes = support::javac(&dir, &[("Big.java", &src)]);
    let path = classes.join("Big.class");
    let (ok, expected, err) = support::java(&[&classes], "Big");
    assert!(ok, "{err}");

    let mut cf = ClassFile::parse(&std::fs::read(&path).unwrap()).unwrap();
    let index = cf.find_method("f", None).unwrap();
    let code_at = cf.attribute_position(&cf.methods[index].attributes, "Code").unwrap();
    let info = MethodInfo { class: "Big", name: "f", descriptor: "(I)I", access: cf.methods[index].access };
    let mut code = Code::decode(&cf.methods[index].attributes[code_at].data, &cf.pool, &info).unwrap();
    // 2000 nops right after the `if`: its forward jump and the loop's backward jump overflow.
    let at = code
        .insns
        .iter()
        .position(|i| matches!(i, Insn::Branch { op, .. } if *op == repair_bytecode::code::opcodes::IFNE))
        .unwrap()
        + 1;
    code.insns.splice(at..at, std::iter::repeat_n(Insn::Op(NOP), 2000));
    let data = code.encode(&mut cf.pool, &info).unwrap();
    let again = Code::decode(&data, &cf.pool, &info).unwrap();
    assert!(again.insns.iter().any(|i| matches!(i, Insn::Branch { op, .. } if *op == GOTO_W)), "a goto_w was emitted");
    cf.methods[index].attributes[code_at].data = data;
    std::fs::write(&path, cf.to_bytes().unwrap()).unwrap();

    let (ok, out, err) = support::java(&[&classes], "Big");
    assert!(ok, "HotSpot rejects the widened code:\n{err}");
    assert_eq!(out, expected);
}
