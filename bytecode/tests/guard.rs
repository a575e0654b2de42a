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
