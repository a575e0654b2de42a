//! Golden behaviour of `breaker`: a stand-in `repair.rt.Hooks` keeps a tiny breaker per id (open after
//! two failures, one short-circuited call, then a trial), and of `recursion_guard`, the same
//! shape: the stand-in keeps a depth (3 calls open at most); every rewritten class runs on HotSpot
//! with verification on.

mod support;

use repair_bytecode::transform::breaker::{breaker, recursion_guard};
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
    public static int depth;
    public static boolean recursionEnter(int id) {
        if (depth >= 3) { System.out.println("  refused " + id + " at depth " + depth); return false; }
        depth++;
        return true;
    }
    public static void recursionExit(int id) { depth--; }
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
        assert!(e.contains(m) && e.contains(why) && e.contains("a breaker"), "{m}: {e}");
        let e = recursion_guard(&bytes, &spec(m, Fallback::Default, 1)).unwrap_err().to_string();
        assert!(e.contains(m) && e.contains(why) && e.contains("a recursion guard"), "{m}: {e}");
    }
    let e = breaker(&bytes, &spec("area", Fallback::Null, 1)).unwrap_err().to_string();
    assert!(e.contains("area"), "{e}");
}

/// Recursive methods of every return kind; `main` prints each result and the stand-in's depth
/// after it (0: every way out of the body left the depth as it found it).
const RECURSIVE: &str = r#"
import repair.rt.Hooks;
public class Recursive {
    int base = 1;
    static int countdown(int n) { return n == 0 ? 0 : 1 + countdown(n - 1); }
    static long walk(long steps, long acc) { return steps == 0 ? acc : walk(steps - 1, acc + 1); }
    static double halve(double d, int n) { return n == 0 ? d : halve(d / 2, n - 1); }
    static String path(String s, int n) { return n == 0 ? s : path(s + "/x", n - 1); }
    static String fallbackPath(String s, int n) { return "fb(" + s + ")"; }
    static boolean even(int n) { return n == 0 || !even(n - 1); }
    static int thrower(int n) { if (n == 0) throw new IllegalStateException("bottom"); return thrower(n - 1); }
    static int loopAtStart(int n) { while (n > 100) { n -= 100; } return n < 5 ? n : loopAtStart(n - 5); }
    int depthOf(int n) { return n == 0 ? base : base + depthOf(n - 1); }
    static int visits;
    static void visit(int n) { visits++; if (n > 0) visit(n - 1); }
    static void show(String what, Object v) { System.out.println(what + " = " + v + " depth=" + Hooks.depth); }
    public static void main(String[] args) {
        show("countdown(2)", countdown(2));
        show("countdown(10)", countdown(10));
        show("walk(2,0)", walk(2, 0));
        show("walk(100,0)", walk(100, 0));
        show("halve(8,2)", halve(8, 2));
        show("halve(8,9)", halve(8, 9));
        show("path(a,1)", path("a", 1));
        show("path(a,9)", path("a", 9));
        show("even(2)", even(2));
        show("even(9)", even(9));
        try { thrower(2); } catch (IllegalStateException e) { show("thrower(2) threw", e.getMessage()); }
        show("thrower(9)", thrower(9));
        show("loopAtStart(207)", loopAtStart(207));
        show("loopAtStart(350)", loopAtStart(350));
        Recursive r = new Recursive();
        show("depthOf(1)", r.depthOf(1));
        show("depthOf(9)", r.depthOf(9));
        visit(9);
        show("visits", visits);
    }
}
"#;

#[test]
fn recursion_guards_return_the_fallback_past_the_depth_and_keep_it_balanced() {
    let dir = support::scratch("recursion");
    let classes = support::javac(&dir, &[("repair/rt/Hooks.java", HOOKS), ("Recursive.java", RECURSIVE)]);
    let path = classes.join("Recursive.class");
    let mut bytes = std::fs::read(&path).unwrap();
    for s in [
        spec("countdown", Fallback::Constant(Constant::Int(-100)), 1),
        spec("walk", Fallback::Argument(1), 2),
        spec("halve", Fallback::Constant(Constant::Float(-1.5)), 3),
        spec("path", Fallback::StaticMethod { class: "Recursive".into(), name: "fallbackPath".into() }, 4),
        spec("even", Fallback::Constant(Constant::Bool(true)), 5),
        spec("thrower", Fallback::Default, 6),
        spec("loopAtStart", Fallback::Argument(0), 7),
        spec("depthOf", Fallback::Constant(Constant::Int(50)), 8),
        spec("visit", Fallback::Default, 9),
    ] {
        bytes = recursion_guard(&bytes, &s).unwrap_or_else(|e| panic!("{}: {e}", s.method));
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Recursive");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    // Three calls open at most: the fourth nested call returns the fallback, which the three
    // above it then build on; shallower calls run as written.
    let want = "\
countdown(2) = 2 depth=0
  refused 1 at depth 3
countdown(10) = -97 depth=0
walk(2,0) = 2 depth=0
  refused 2 at depth 3
walk(100,0) = 3 depth=0
halve(8,2) = 2.0 depth=0
  refused 3 at depth 3
halve(8,9) = -1.5 depth=0
path(a,1) = a/x depth=0
  refused 4 at depth 3
path(a,9) = fb(a/x/x/x) depth=0
even(2) = true depth=0
  refused 5 at depth 3
even(9) = false depth=0
thrower(2) threw = bottom depth=0
  refused 6 at depth 3
thrower(9) = 0 depth=0
loopAtStart(207) = 2 depth=0
  refused 7 at depth 3
loopAtStart(350) = 35 depth=0
depthOf(1) = 2 depth=0
  refused 8 at depth 3
depthOf(9) = 53 depth=0
  refused 9 at depth 3
visits = 3 depth=0
";
    assert_eq!(out, want, "stderr:\n{err}");
}
