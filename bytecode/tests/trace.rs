//! Golden behaviour of `trace`: every call of the traced method is wrapped in callEnter/callExit
//! around the callee's own output, a call that throws gets no callExit, and the program computes
//! what it did before, on HotSpot with verification on.

mod support;

use repair_bytecode::transform::check_redefinable;
use repair_bytecode::transform::trace::{trace, TraceSpec, TracedCall};
use repair_bytecode::transform::MethodTarget;

/// Stands in for the class the agent defines: prints what it receives.
const HOOKS: &str = r#"
package repair.rt;
public class Hooks {
    public static void callEnter(int id, int site) { System.out.println("callEnter " + id + " " + site); }
    public static void callExit(int id, int site) { System.out.println("callExit " + id + " " + site); }
}
"#;

/// Each call of interest sits on a line marked `// @name`, so the expected lines follow the text.
const SHOP: &str = r#"
import java.util.function.IntUnaryOperator;

class Base {
    Base(int n) { System.out.println("  Base " + n); }
}

interface Pricer { int price(int qty); }

class Flat implements Pricer {
    public int price(int qty) { System.out.println("  price " + qty); return qty * 3; }
}

public abstract class Shop extends Base {
    final String name;
    Shop(String name) {
        super(len(name)); // @super
        this.name = name;
    }
    static int len(String s) { System.out.println("  len " + s); return s.length(); }
    static int tax(int x) { System.out.println("  tax " + x); return x + 1; }
    static void fail(int x) { System.out.println("  fail " + x); throw new IllegalStateException("bad " + x); }
    String label(int total) { System.out.println("  label " + total); return name + ":" + total; }
    abstract int pending();
    static int one() { System.out.println("  one"); return 100; }
    static int two() { System.out.println("  two"); return 200; }
    static native void nothing();
    static int pure(int x) { return x * 2 + 1; }

    static String order(int qty) {
        Shop s = new Shop("ab") { int pending() { return 0; } }; // @new
        Pricer p = new Flat(); // @flat
        int total = p.price(qty); // @price
        total += tax(total); // @tax
        IntUnaryOperator twice = x -> x * 2; // @lambda
        total = twice.applyAsInt(total); // @apply
        try {
            fail(total); // @fail
        } catch (IllegalStateException e) {
            total = -total;
        }
        for (int i = 0; i < 2; i++) {
            total += tax(i); // @loop
        }
        // Jumps land on the second call and right after it: only the call taken is reported.
        total += qty > 0 ? one() : two(); // @pick
        return s.label(total); // @label
    }

    public static void main(String[] args) {
        System.out.println(order(4));
    }
}
"#;

fn line(marker: &str) -> Option<u16> {
    let tag = format!("// @{marker}");
    let n = SHOP.lines().position(|l| l.contains(&tag)).unwrap_or_else(|| panic!("no marker {marker}"));
    Some(n as u16 + 1)
}

fn call(owner: &str, name: &str, descriptor: &str, marker: &str) -> TracedCall {
    TracedCall { owner: owner.into(), name: name.into(), descriptor: descriptor.into(), line: line(marker) }
}

fn spec(method: &str, trace_id: i32) -> TraceSpec {
    TraceSpec { method: MethodTarget::parse(method), trace_id }
}

#[test]
fn every_call_is_wrapped_around_the_callee_and_results_stay_the_same() {
    let dir = support::scratch("trace");
    let classes = support::javac(&dir, &[("Shop.java", SHOP), ("repair/rt/Hooks.java", HOOKS)]);
    let path = classes.join("Shop.class");
    let (ok, before, err) = support::java(&[&classes], "Shop");
    assert!(ok, "{err}");

    let original = std::fs::read(&path).unwrap();
    let (bytes, sites) = trace(&original, &spec("order", 7)).unwrap();
    assert_eq!(
        sites,
        [
            call("Shop$1", "<init>", "(Ljava/lang/String;)V", "new"),
            call("Flat", "<init>", "()V", "flat"),
            call("Pricer", "price", "(I)I", "price"),
            call("Shop", "tax", "(I)I", "tax"),
            call("", "applyAsInt", "()Ljava/util/function/IntUnaryOperator;", "lambda"),
            call("java/util/function/IntUnaryOperator", "applyAsInt", "(I)I", "apply"),
            call("Shop", "fail", "(I)V", "fail"),
            call("Shop", "tax", "(I)I", "loop"),
            call("Shop", "one", "()I", "pick"),
            call("Shop", "two", "()I", "pick"),
            call("Shop", "label", "(I)Ljava/lang/String;", "label"),
        ]
    );
    check_redefinable(&original, &bytes).unwrap();
    // A constructor: the calls before super(...) run on an uninitialized `this`.
    let (bytes, sites) = trace(&bytes, &spec("<init>", 8)).unwrap();
    assert_eq!(sites, [call("Shop", "len", "(Ljava/lang/String;)I", "super"), call("Base", "<init>", "(I)V", "super")]);
    check_redefinable(&original, &bytes).unwrap();
    std::fs::write(&path, &bytes).unwrap();

    let (ok, out, err) = support::java(&[&classes], "Shop");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    let results: Vec<&str> = out.lines().filter(|l| !l.starts_with("call")).collect();
    assert_eq!(results, before.lines().collect::<Vec<_>>(), "output unchanged");
    assert_eq!(
        out,
        "callEnter 7 0
callEnter 8 0
  len ab
callExit 8 0
callEnter 8 1
  Base 2
callExit 8 1
callExit 7 0
callEnter 7 1
callExit 7 1
callEnter 7 2
  price 4
callExit 7 2
callEnter 7 3
  tax 12
callExit 7 3
callEnter 7 4
callExit 7 4
callEnter 7 5
callExit 7 5
callEnter 7 6
  fail 50
callEnter 7 7
  tax 0
callExit 7 7
callEnter 7 7
  tax 1
callExit 7 7
callEnter 7 8
  one
callExit 7 8
callEnter 7 10
  label 53
callExit 7 10
ab:53
"
    );
}

#[test]
fn trace_refuses_methods_without_calls_to_wrap() {
    let dir = support::scratch("trace-refuse");
    let classes = support::javac(&dir, &[("Shop.java", SHOP)]);
    let shop = std::fs::read(classes.join("Shop.class")).unwrap();
    let refusal = |class: &[u8], method: &str| trace(class, &spec(method, 1)).unwrap_err().to_string();
    assert_eq!(refusal(&shop, "pending"), "method Shop.pending()I: is abstract or native: it has no body to rewrite");
    assert_eq!(refusal(&shop, "nothing"), "method Shop.nothing()V: is abstract or native: it has no body to rewrite");
    assert_eq!(
        refusal(&shop, "pure"),
        "method Shop.pure(I)I, trace: the method makes no calls: there is nothing to trace"
    );
    assert_eq!(refusal(&shop, "missing"), "class Shop: no method missing");

    // 6000 calls fit in 18000 bytes; wrapped, they need more than the 65535 a method may have.
    let body = "f();".repeat(6000);
    let big = format!("public class Big {{ static void f() {{}} static void big() {{ {body} }} }}");
    let classes = support::javac(&support::scratch("trace-big"), &[("Big.java", &big)]);
    let big = std::fs::read(classes.join("Big.class")).unwrap();
    let err = refusal(&big, "big");
    assert!(err.starts_with("method Big.big()V, code: ") && err.ends_with("exceed the 65535-byte limit"), "{err}");
}
