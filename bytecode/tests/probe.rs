//! Golden behaviour of `probe`: the probed program computes the same results and the hooks
//! see entry, exit, throw and line events in order, with arguments and return values.

mod support;

use repair_bytecode::transform::probe::{probe, probe_all};
use repair_bytecode::transform::{MethodTarget, ProbePoint, ProbeSpec};

/// Stands in for the class the agent defines: prints what it receives.
const HOOKS: &str = r#"
package repair.rt;
public class Hooks {
    public static void fallback(int id, Throwable t) { System.out.println("fallback " + id + " " + t); }
    public static void enter(int id) { System.out.println("enter " + id); }
    public static void enterArgs(int id, Object[] a) { System.out.println("enterArgs " + id + " " + java.util.Arrays.toString(a)); }
    public static void enterPacked(int id, int shape, long p0, long p1, long p2, long p3, Object r0, Object r1, Object r2, Object r3) {
        System.out.println("enterPacked " + id + " " + Integer.toHexString(shape) + " " + p0 + " " + p1 + " " + p2 + " " + p3
            + " " + name(r0) + " " + name(r1) + " " + name(r2) + " " + name(r3));
    }
    static String name(Object r) { return r == null ? "null" : r instanceof String ? (String) r : r.getClass().getName(); }
    public static void exitPrimitive(long v, int id, int code) {
        System.out.println("exitPrimitive " + id + " " + code + " "
            + (code == 7 ? "" + Float.intBitsToFloat((int) v) : code == 8 ? "" + Double.longBitsToDouble(v) : "" + v));
    }
    public static void enterAt(int id, long t) { System.out.println("enterAt " + id + " " + (t != 0)); }
    public static void exit(int id) { System.out.println("exit " + id); }
    public static void exitValue(int id, Object v) { System.out.println("exitValue " + id + " " + v); }
    public static void exitAt(int id, long t) { System.out.println("exitAt " + id + " " + (t != 0)); }
    public static void thrown(int id, Throwable t) { System.out.println("thrown " + id + " " + t.getClass().getName()); }
    public static void line(int id, int line) { System.out.println("line " + id + " " + line); }
}
"#;

const CALC: &str = r#"
public class Calc {
    final long base;
    Calc(long base) { super(); this.base = base; }
    long add(int a, long b, String tag) {
        long r = base + a + b;
        return tag == null ? r : r * 2;
    }
    static double half(double d) {
        if (d < 0) throw new IllegalArgumentException("negative");
        return d / 2;
    }
    static void loop(int n) {
        int s = 0;
        for (int i = 0; i < n; i++) {
            s += i;
        }
        System.out.println("sum=" + s);
    }
    public static void main(String[] args) {
        Calc c = new Calc(10);
        System.out.println("add=" + c.add(1, 2L, "x"));
        System.out.println("half=" + half(3));
        try { half(-1); } catch (IllegalArgumentException e) { System.out.println("caught " + e.getMessage()); }
        loop(2);
    }
}
"#;

const MIX: &str = r#"
public class Mix {
    public static void main(String[] args) {
        System.out.println("mix=" + new Mix().mix(1.5f, 2.25, 'a', true, (byte) 3));
        System.out.println("scale=" + scale(1.5f, 2.0, (short) 3));
    }
    float mix(float f, double d, char ch, boolean z, byte b) { return f + (float) d + ch + (z ? b : 0); }
    static double scale(float f, double d, short s) { return f * d * s; }
}
"#;

fn spec(method: &str, points: Vec<ProbePoint>, id: i32) -> ProbeSpec {
    ProbeSpec {
        method: MethodTarget::parse(method),
        points,
        probe_id: id,
        capture_args: false,
        capture_this: false,
        capture_return: false,
        timestamp: false,
    }
}

#[test]
fn probes_fire_in_order_and_results_stay_the_same() {
    let dir = support::scratch("probe");
    let classes = support::javac(&dir, &[("Calc.java", CALC), ("repair/rt/Hooks.java", HOOKS)]);
    let path = classes.join("Calc.class");
    let (ok, before, err) = support::java(&[&classes], "Calc");
    assert!(ok, "{err}");

    let mut bytes = std::fs::read(&path).unwrap();
    let mut add = spec("add", vec![ProbePoint::Entry, ProbePoint::Exit], 1);
    add.capture_args = true;
    add.capture_return = true;
    add.capture_this = true;
    bytes = probe(&bytes, &add).unwrap();
    let mut half = spec("half", vec![ProbePoint::Entry, ProbePoint::Exit, ProbePoint::Throw], 2);
    half.timestamp = true;
    bytes = probe(&bytes, &half).unwrap();
    bytes = probe(&bytes, &spec("loop", vec![ProbePoint::Line(16)], 3)).unwrap();
    bytes = probe(&bytes, &spec("<init>", vec![ProbePoint::Entry, ProbePoint::Exit, ProbePoint::Throw], 4)).unwrap();
    std::fs::write(&path, &bytes).unwrap();

    let (ok, out, err) = support::java(&[&classes], "Calc");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    let results: Vec<&str> = out.lines().filter(|l| l.contains('=') || l.starts_with("caught")).collect();
    let expected: Vec<&str> = before.lines().collect();
    assert_eq!(results, expected, "results unchanged");
    let events: Vec<&str> = out.lines().filter(|l| !results.contains(l)).collect();
    assert_eq!(
        events,
        [
            "enter 4",
            "exit 4",
            // (int, long, String) and `this`: shape 3 parameters I J L, `this` the last reference.
            "enterPacked 1 40009653 1 2 0 0 x Calc null null",
            "exitPrimitive 1 6 26",
            "enterAt 2 true",
            "exitAt 2 true",
            "enterAt 2 true",
            "thrown 2 java.lang.IllegalArgumentException",
            "line 3 16",
            "line 3 16",
        ],
        "full output:\n{out}"
    );
}

/// Primitives reach the hooks unboxed, each type widened as `hooks::packed` says; a method with
/// more primitives than a packed entry carries gets them boxed in an array instead.
#[test]
fn arguments_and_return_values_of_every_primitive_type_reach_the_hooks() {
    let dir = support::scratch("probe-packed");
    let classes = support::javac(&dir, &[("Mix.java", MIX), ("repair/rt/Hooks.java", HOOKS)]);
    let path = classes.join("Mix.class");
    let (ok, before, err) = support::java(&[&classes], "Mix");
    assert!(ok, "{err}");
    let mut bytes = std::fs::read(&path).unwrap();
    for (method, id) in [("mix", 5), ("scale", 6)] {
        let mut s = spec(method, vec![ProbePoint::Entry, ProbePoint::Exit], id);
        s.capture_args = true;
        s.capture_return = true;
        bytes = probe(&bytes, &s).unwrap();
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Mix");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    let results: Vec<&str> = out.lines().filter(|l| l.contains('=')).collect();
    assert_eq!(results, before.lines().collect::<Vec<_>>(), "results unchanged");
    let events: Vec<&str> = out.lines().filter(|l| !l.contains('=')).collect();
    let scale = format!("enterPacked 6 4873 {} {} 3 0 null null null null", 1.5f32.to_bits(), 2.0f64.to_bits());
    assert_eq!(
        events,
        [
            "enterArgs 5 [1.5, 2.25, a, true, 3]",
            "exitPrimitive 5 7 103.75",
            // (float, double, short): a float's raw bits, a double's, a short widened.
            &scale,
            "exitPrimitive 6 8 9.0",
        ],
        "full output:\n{out}"
    );
}

#[test]
fn probe_refuses_a_line_without_code() {
    let dir = support::scratch("probe-refuse");
    let classes = support::javac(&dir, &[("Calc.java", CALC)]);
    let bytes = std::fs::read(classes.join("Calc.class")).unwrap();
    let err = probe(&bytes, &spec("loop", vec![ProbePoint::Line(99)], 1)).unwrap_err();
    assert_eq!(err.to_string(), "method Calc.loop(I)V, probe: no code on line 99: the method spans lines 14..19");
}

#[test]
fn probe_all_keeps_the_program_working() {
    let dir = support::scratch("probe-all");
    let classes = support::javac(&dir, &[("Calc.java", CALC), ("repair/rt/Hooks.java", HOOKS)]);
    let path = classes.join("Calc.class");
    let (bytes, probed) = probe_all(&std::fs::read(&path).unwrap(), 100).unwrap();
    assert_eq!(probed, 5);
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Calc");
    assert!(ok, "{err}");
    assert!(out.starts_with("enter 104\nenter 100\nexit 100\nenter 101\nexit 101\nadd=26\n"), "{out}");
    assert!(out.contains("thrown 102 java.lang.IllegalArgumentException\ncaught negative\n"), "{out}");
}

#[test]
fn throw_probes_on_every_method_report_exits_by_exception_only() {
    use repair_bytecode::transform::probe::throw_probe_all;
    let dir = support::scratch("probe-throw-all");
    let classes = support::javac(&dir, &[("Calc.java", CALC), ("repair/rt/Hooks.java", HOOKS)]);
    let path = classes.join("Calc.class");
    let (ok, before, _) = support::java(&[&classes], "Calc");
    assert!(ok);
    let (bytes, probed) = throw_probe_all(&std::fs::read(&path).unwrap(), |_, _| Some(200)).unwrap();
    assert_eq!(probed, 5);
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Calc");
    assert!(ok, "{err}");
    // half(-1) throws out of half (method #2): one event, then main catches it as before.
    assert_eq!(out.replace("thrown 202 java.lang.IllegalArgumentException\n", ""), before);
    assert_eq!(out.matches("thrown").count(), 1, "{out}");
}
