//! Golden behaviour of `breaker`: a stand-in `repair.rt.Hooks` keeps a tiny breaker per id (open after
//! two failures, one short-circuited call, then a trial); every rewritten class runs on HotSpot
//! with verification on.

mod support;

use repair_bytecode::transform::breaker::breaker;
use repair_bytecode::transform::{BreakerSpec, Constant, Fallback, MethodTarget};

const HOOKS: &str = r#"
package repair.rt;
public class Hooks {
    static int failures, skipped, last; static boolean open;
    public static boolean breakerEnter(int id) {
        if (id != last) { open = false; failures = 0; last = id; }
        if (open && skipped++ < 1) { System.out.println("  short-circuit " + id); return false; }
        if (open) System.out.println("  trial " + id);
        return true;
    }
    public static void breakerExit(int id) { if (open) { open = false; failures = 0; System.out.println("  closed " + id); } }
    public static void breakerThrown(int id, Throwable t) {
        System.out.println("  failed " + id + " " + t.getClass().getSimpleName());
        if (open || ++failures >= 2) { open = true; skipped = 0; }
    }
}
"#;

const CALLS: &str = r#"
public class Calls {
    int base = 5;
    int scaled(int x) { if (x < 0) throw new IllegalArgumentException(); return base * x; }
    static long total(long a, long b) { long s = 0; for (long i = a; i < b; i++) { s += i; if (i == 99) throw new IllegalStateException(); } return s; }
    static double half(double d) { try { if (d < 0) throw new ArithmeticException(); } catch (IllegalStateException e) { return -1; } return d / 2; }
    static String echo(String s) { return s.substring(1); }
    static String fallbackEcho(String s) { return "fb(" + s + ")"; }
    static boolean flag(int x) { return 10 / x > 1; }
    static void run(int x) { if (x == 0) throw new RuntimeException("zero"); System.out.println("  ran " + x); }
    static int loopAtStart(int n) { while (n > 100) { n -= 100; if (n == 7) throw new IllegalStateException(); } return n; }
    static void round(String name, Runnable r) {
        for (int i = 0; i < 4; i++) {
            try { r.run(); } catch (RuntimeException e) { System.out.println("  threw " + e.getClass().getSimpleName()); }
        }
    }
    public static void main(String[] args) {
        Calls c = new Calls();
        int[] in = {-1, -1, 2, 3};
        int[] i = {0};
        System.out.println("scaled"); i[0] = 0; round("scaled", () -> System.out.println("  = " + c.scaled(in[i[0]++])));
        System.out.println("total"); round("total", () -> System.out.println("  = " + total(99, 101)));
        System.out.println("half"); round("half", () -> System.out.println("  = " + half(-2)));
        System.out.println("echo"); String[] s = {"", "", "ab", "cd"}; i[0] = 0; round("echo", () -> System.out.println("  = " + echo(s[i[0]++])));
        System.out.println("flag"); int[] f = {0, 0, 2, 1}; i[0] = 0; round("flag", () -> System.out.println("  = " + flag(f[i[0]++])));
        System.out.println("run"); int[] r = {0, 0, 4, 5}; i[0] = 0; round("run", () -> run(r[i[0]++]));
        System.out.println("loop"); int[] l = {107, 107, 250, 3}; i[0] = 0; round("loop", () -> System.out.println("  = " + loopAtStart(l[i[0]++])));
    }
}
"#;

fn spec(method: &str, fallback: Fallback, id: i32) -> BreakerSpec {
    BreakerSpec { method: MethodTarget::parse(method), fallback, report_id: id }
}

#[test]
fn open_breakers_skip_the_body_and_return_the_fallback() {
    let dir = support::scratch("breaker");
    let classes = support::javac(&dir, &[("repair/rt/Hooks.java", HOOKS), ("Calls.java", CALLS)]);
    let path = classes.join("Calls.class");
    let mut bytes = std::fs::read(&path).unwrap();
    for s in [
        spec("scaled", Fallback::Constant(Constant::Int(-9)), 1),
        spec("total", Fallback::Argument(1), 2),
        spec("half", Fallback::Constant(Constant::Float(0.5)), 3),
        spec("echo", Fallback::StaticMethod { class: "Calls".into(), name: "fallbackEcho".into() }, 4),
        spec("flag", Fallback::Constant(Constant::Bool(true)), 5),
        spec("run", Fallback::Default, 6),
        spec("loopAtStart", Fallback::Argument(0), 7),
    ] {
        bytes = breaker(&bytes, &s).unwrap_or_else(|e| panic!("{}: {e}", s.method));
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Calls");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    let expect = |name: &str, id: i32, fails: &str, fallback: &str, trial: &str| {
        format!(
            "{name}\n  failed {id} {fails}\n  threw {fails}\n  failed {id} {fails}\n  threw {fails}\n  short-circuit {id}\n{fallback}  trial {id}\n{trial}"
        )
    };
    let want = [
        expect("scaled", 1, "IllegalArgumentException", "  = -9\n", "  closed 1\n  = 15\n"),
        expect(
            "total",
            2,
            "IllegalStateException",
            "  = 101\n",
            "  failed 2 IllegalStateException\n  threw IllegalStateException\n",
        ),
        expect(
            "half",
            3,
            "ArithmeticException",
            "  = 0.5\n",
            "  failed 3 ArithmeticException\n  threw ArithmeticException\n",
        ),
        expect("echo", 4, "StringIndexOutOfBoundsException", "  = fb(ab)\n", "  closed 4\n  = d\n"),
        expect("flag", 5, "ArithmeticException", "  = true\n", "  closed 5\n  = true\n"),
        expect("run", 6, "RuntimeException", "", "  ran 5\n  closed 6\n"),
        expect("loop", 7, "IllegalStateException", "  = 250\n", "  closed 7\n  = 3\n"),
    ]
    .concat();
    assert_eq!(out, want, "stderr:\n{err}");
}

#[test]
fn initializers_and_bodiless_methods_are_refused_by_name() {
    let dir = support::scratch("breaker-refused");
    let classes = support::javac(
        &dir,
        &[("Shapes.java", "abstract class Shapes { Shapes() {} static { System.out.println(); } abstract int area(); native int n(); }")],
    );
    let bytes = std::fs::read(classes.join("Shapes.class")).unwrap();
    for (m, why) in [("<init>", "initializer"), ("<clinit>", "initializer"), ("area", "abstract"), ("n", "native")] {
        let e = breaker(&bytes, &spec(m, Fallback::Default, 1)).unwrap_err().to_string();
        assert!(e.contains(m) && e.contains(why), "{m}: {e}");
    }
    let e = breaker(&bytes, &spec("area", Fallback::Null, 1)).unwrap_err().to_string();
    assert!(e.contains("area"), "{e}");
}
