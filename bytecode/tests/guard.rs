//! Golden behaviour of `guard`: compile, rewrite, run on HotSpot (verification on), check output.

mod support;

use repair_bytecode::transform::guard::{guard, guard_all};
use repair_bytecode::transform::{Constant, Fallback, GuardSpec, MethodTarget};

const SHOP: &str = r#"
import java.util.*;
public class Shop {
    final Map<String, Long> prices = new HashMap<>();
    int served;
    Shop() { prices.put("apple", 3L); }
    Shop(String seed) { this(); if (seed == null) throw new IllegalStateException("no seed"); prices.put(seed, 1L); }
    long price(String item) { served++; return prices.get(item).longValue(); }
    static long ratio(long a, long b) { long base = 10; for (int i = 0; i < 2; i++) base += i; return base + a / b; }
    static int page(List<Integer> xs, int p) { return xs.get(p); }
    static String name(String s, int n) { if (n > 0) { String t = s.substring(n); return t; } return s.substring(100); }
    static long fallbackRatio(long a, long b) { return -a; }
    static Integer boxed(String s) { return Integer.valueOf(s); }
    static double half(double d, long l) { if (d < 0) throw new ArithmeticException(); return d / 2; }
    static void noisy() { throw new RuntimeException("boom"); }
    public static void main(String[] a) {
        Shop s = new Shop();
        System.out.println("price=" + s.price("apple") + "," + s.price("pear") + " served=" + s.served);
        System.out.println("ratio=" + ratio(7, 0));
        System.out.println("page=" + page(Arrays.asList(1, 2), 5));
        System.out.println("name=" + name("hello", 99));
        System.out.println("boxed=" + boxed("x"));
        System.out.println("half=" + half(-1, 5L));
        noisy();
        System.out.println("ctor=" + new Shop(null).prices.size());
        System.out.println("end");
    }
}
"#;

fn spec(method: &str, catch: &str, fallback: Fallback) -> GuardSpec {
    GuardSpec {
        method: MethodTarget::parse(method),
        catch: vec![catch.into()],
        fallback,
        call_site: None,
        report_id: None,
    }
}

#[test]
fn guarded_methods_return_their_fallbacks() {
    let dir = support::scratch("guard");
    let classes = support::javac(&dir, &[("Shop.java", SHOP)]);
    let path = classes.join("Shop.class");
    let mut bytes = std::fs::read(&path).unwrap();
    let specs = [
        spec("price", "java.lang.NullPointerException", Fallback::Constant(Constant::Int(-1))),
        spec(
            "ratio",
            "java/lang/ArithmeticException",
            Fallback::StaticMethod { class: "Shop".into(), name: "fallbackRatio".into() },
        ),
        spec("page", "java.lang.IndexOutOfBoundsException", Fallback::Argument(1)),
        spec("name", "java.lang.StringIndexOutOfBoundsException", Fallback::Argument(0)),
        spec("boxed", "java.lang.NumberFormatException", Fallback::Constant(Constant::Int(42))),
        spec("half", "java.lang.ArithmeticException", Fallback::Constant(Constant::Float(0.25))),
        spec("noisy", "java.lang.RuntimeException", Fallback::Default),
        spec("<init>(Ljava/lang/String;)V", "java.lang.IllegalStateException", Fallback::Default),
    ];
    for s in &specs {
        bytes = guard(&bytes, s).unwrap_or_else(|e| panic!("{}: {e}", s.method));
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Shop");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        out, "price=3,-1 served=2\nratio=-7\npage=5\nname=hello\nboxed=42\nhalf=0.25\nctor=1\nend\n",
        "stderr:\n{err}"
    );
}

#[test]
fn guard_refuses_bad_specs_with_the_member_named() {
    let dir = support::scratch("guard-refuse");
    let classes = support::javac(&dir, &[("Shop.java", SHOP)]);
    let bytes = std::fs::read(classes.join("Shop.class")).unwrap();
    let err = guard(&bytes, &spec("nope", "java.lang.Throwable", Fallback::Default)).unwrap_err();
    assert_eq!(err.to_string(), "class Shop: no method nope");
    let err = guard(&bytes, &spec("<init>", "java.lang.Throwable", Fallback::Default)).unwrap_err();
    assert!(err.to_string().contains("overloaded"), "{err}");
    let err = guard(&bytes, &spec("price", "java.lang.Throwable", Fallback::Null)).unwrap_err();
    assert!(err.to_string().contains("null cannot be returned as long"), "{err}");
    let err = guard(&bytes, &spec("ratio", "java.lang.Throwable", Fallback::Argument(5))).unwrap_err();
    assert!(err.to_string().contains("argument 5 does not exist"), "{err}");
    let err = guard(&bytes, &spec("noisy", "java.lang.Throwable", Fallback::Constant(Constant::Int(1)))).unwrap_err();
    assert!(err.to_string().contains("void"), "{err}");
    assert!(guard(b"not a class", &spec("x", "java.lang.Throwable", Fallback::Default)).is_err());
}

#[test]
fn guard_all_keeps_behaviour_of_methods_that_do_not_throw() {
    let dir = support::scratch("guard-all");
    let classes = support::javac(&dir, &[("Shop.java", SHOP)]);
    let path = classes.join("Shop.class");
    let (bytes, stats) = guard_all(&std::fs::read(&path).unwrap()).unwrap();
    assert!(stats.skipped.is_empty(), "{:?}", stats.skipped);
    assert_eq!(stats.guarded, 11);
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Shop");
    assert!(ok, "{err}");
    // Every faulting method now returns its type's default; the rest computes as before.
    assert_eq!(
        out, "price=3,0 served=2\nratio=0\npage=0\nname=null\nboxed=null\nhalf=0.0\nctor=1\nend\n",
        "stderr:\n{err}"
    );
}

const INITIALIZERS: &str = r#"
class Base {
    final int size;
    Base(int size) { this.size = size; }
}
public class Invoice extends Base {
    static int[] rates;
    static { rates = new int[2]; rates[0] = 7; rates[5] = 1; }
    String name = "unset";
    int lines;
    Invoice(String name, int lines) {
        super(lines > 0 ? lines : -lines);
        this.lines = lines;
        this.name = name.trim();
    }
    Invoice(String name) { this(name, 1); this.lines += name.length(); }
    public static void main(String[] a) {
        System.out.println("rates=" + rates[0] + "," + rates.length);
        Invoice i = new Invoice(null, -3);
        System.out.println("two=" + i.name + "," + i.lines + "," + i.size);
        Invoice j = new Invoice(null);
        System.out.println("one=" + j.name + "," + j.lines + "," + j.size);
        System.out.println("ok=" + new Invoice(" x ", 2).name);
    }
}
"#;

/// Every `StackMapTable` frame of `name descriptor` in `bytes` must agree with the types the
/// inference computes without the table (the frames a rewrite wrote are the ones checked), and
/// the inference seeded by the table must run through.
fn assert_frames_valid(bytes: &[u8], name: &str, descriptor: &str) {
    use repair_bytecode::analysis::{Analysis, State};
    use repair_bytecode::code::{Code, Insn, MethodInfo, VType};
    use repair_bytecode::hierarchy::ObjectHierarchy;
    let cf = repair_bytecode::ClassFile::parse(bytes).unwrap();
    let m = &cf.methods[cf.find_method(name, Some(descriptor)).unwrap()];
    let class = cf.name().unwrap().into_owned();
    let info = MethodInfo { class: &class, name, descriptor, access: m.access };
    let code = Code::decode(&cf.find_attribute(&m.attributes, "Code").unwrap().data, &cf.pool, &info).unwrap();
    Analysis::run(&code, &cf.pool, &info, &ObjectHierarchy).unwrap_or_else(|e| panic!("{name}{descriptor}: {e}"));
    let inferred = Analysis::run_with(&code, &cf.pool, &info, &ObjectHierarchy, false).unwrap();
    // Without a class hierarchy at hand, two different object types merge to `Object`: only
    // exact agreement on everything else is asked.
    let fits = |declared: &VType, ours: &VType| match (declared, ours) {
        (VType::Top, _) | (VType::Object(_), VType::Null) | (VType::Object(_), VType::Object(_)) => true,
        (d, o) => d == o,
    };
    for (label, frame) in code.frames().expect("a StackMapTable") {
        let i = code.insns.iter().position(|x| *x == Insn::Label(*label)).unwrap();
        let declared = State::from_frame(frame, code.max_locals as usize);
        let ours = inferred.states[i].as_ref().unwrap_or_else(|| panic!("{name}{descriptor}: frame at dead code"));
        assert!(
            ours.stack.len() == declared.stack.len()
                && declared.stack.iter().zip(&ours.stack).all(|(d, o)| fits(d, o))
                && declared.locals.iter().zip(&ours.locals).all(|(d, o)| fits(d, o)),
            "{name}{descriptor}: declared {frame:?}, inferred {ours:?}"
        );
    }
}

/// Where the handler catching `catch` starts, and where the constructor's own `super(...)` /
/// `this(...)` call is, as instruction indices of the decoded code.
fn guarded_range_and_init_call(bytes: &[u8], descriptor: &str, catch: &str) -> (usize, usize) {
    use repair_bytecode::code::opcodes::INVOKESPECIAL;
    use repair_bytecode::code::{Code, Insn, MethodInfo};
    let cf = repair_bytecode::ClassFile::parse(bytes).unwrap();
    let m = &cf.methods[cf.find_method("<init>", Some(descriptor)).unwrap()];
    let info = MethodInfo { class: "Invoice", name: "<init>", descriptor, access: m.access };
    let code = Code::decode(&cf.find_attribute(&m.attributes, "Code").unwrap().data, &cf.pool, &info).unwrap();
    let handler = code
        .handlers
        .iter()
        .find(|h| h.catch_type != 0 && cf.pool.class_name(h.catch_type).unwrap() == catch)
        .expect("the guard's handler");
    let start = code.insns.iter().position(|x| *x == Insn::Label(handler.start)).unwrap();
    let init = code
        .insns
        .iter()
        .position(|x| match x {
            Insn::Cp { op: INVOKESPECIAL, index } => {
                let r = cf.pool.member_ref(*index).unwrap();
                r.name == "<init>" && (r.class == "Base" || r.class == "Invoice")
            }
            _ => false,
        })
        .expect("super(...) or this(...)");
    (start, init)
}

#[test]
fn constructors_are_guarded_after_super_and_static_initializers_return() {
    let dir = support::scratch("guard-initializers");
    let classes = support::javac(&dir, &[("Invoice.java", INITIALIZERS)]);
    let path = classes.join("Invoice.class");
    let original = std::fs::read(&path).unwrap();
    let (ok, _, err) = support::java(&[&classes], "Invoice");
    assert!(!ok && err.contains("ExceptionInInitializerError"), "unguarded, the static initializer fails: {err}");
    let mut bytes = original.clone();
    // What a generic rule applies at these sites: the default, which for void is a return.
    let two = "(Ljava/lang/String;I)V";
    for s in [
        spec(&format!("<init>{two}"), "java.lang.NullPointerException", Fallback::Default),
        spec("<init>(Ljava/lang/String;)V", "java.lang.NullPointerException", Fallback::Default),
        spec("<clinit>()V", "java.lang.ArrayIndexOutOfBoundsException", Fallback::Default),
    ] {
        bytes = guard(&bytes, &s).unwrap_or_else(|e| panic!("{}: {e}", s.method));
    }
    for (descriptor, init_class) in [(two, "Base"), ("(Ljava/lang/String;)V", "Invoice")] {
        let (start, init) = guarded_range_and_init_call(&bytes, descriptor, "java/lang/NullPointerException");
        assert!(
            start > init,
            "<init>{descriptor}: the try range starts at {start}, before {init_class}.<init> at {init}"
        );
    }
    for (name, descriptor) in [("<init>", two), ("<init>", "(Ljava/lang/String;)V"), ("<clinit>", "()V")] {
        assert_frames_valid(&bytes, name, descriptor);
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Invoice");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    // The object keeps what was set before the fault: `size` from super(...), `lines`, and the
    // field initializer's `name`; the static initializer keeps what it set before its fault.
    assert_eq!(out, "rates=7,2\ntwo=unset,-3,3\none=unset,1,1\nok=x\n", "stderr:\n{err}");
}
