//! Golden behaviour of `oblivious`: a program whose loops run one past the end of every kind of
//! array, rewritten, computes the sums of what is in bounds, drops the writes out of bounds and
//! counts each access made oblivious; a `null` array and a wrong element type still throw. The
//! helpers are the ones the agent generates (added to a stand-in `repair.rt.Hooks` whose
//! `fallback` counts), and every class runs on HotSpot with verification on (JDK 17 and 25).

mod support;

use repair_bytecode::hierarchy::ObjectHierarchy;
use repair_bytecode::transform::oblivious::{helper_methods, oblivious, ObliviousSpec};
use repair_bytecode::transform::MethodTarget;
use repair_bytecode::{ClassFile, ErrorKind};

/// Stands in for the agent's class: `fallback` counts; `take()` says how many since the last
/// call, and the last report id.
const HOOKS: &str = r#"
package repair.rt;
public class Hooks {
    static int count, last;
    public static void fallback(int id, Throwable t) {
        if (t != null) throw new AssertionError("an oblivious access reports no exception");
        count++; last = id;
    }
    public static String take() { String s = count == 0 ? "none" : count + "@" + last; count = 0; return s; }
}
"#;

const ARRAYS: &str = r#"
import repair.rt.Hooks;
public class Arrays {
    static int ints(int[] a) { int s = 0; for (int i = 0; i <= a.length; i++) s += a[i]; return s; }
    static long longs(long[] a) { long s = 0; for (int i = 0; i <= a.length; i++) s += a[i]; return s; }
    static float floats(float[] a) { float s = 0; for (int i = 0; i <= a.length; i++) s += a[i]; return s; }
    static double doubles(double[] a) { double s = 0; for (int i = 0; i <= a.length; i++) s += a[i]; return s; }
    static int bytes(byte[] a) { int s = 0; for (int i = 0; i <= a.length; i++) s += a[i]; return s; }
    static int booleans(boolean[] a) { int n = 0; for (int i = 0; i <= a.length; i++) if (a[i]) n++; return n; }
    static int chars(char[] a) { int s = 0; for (int i = 0; i <= a.length; i++) s += a[i]; return s; }
    static int shorts(short[] a) { int s = 0; for (int i = 0; i <= a.length; i++) s += a[i]; return s; }
    static int strings(String[] a) {
        int n = 0;
        for (int i = 0; i <= a.length; i++) { String s = a[i]; n += s == null ? 100 : s.length(); }
        return n;
    }
    static int rows(int[][] m) { int[] row = m[m.length]; return row == null ? -1 : row.length; }
    static int before(int[] a) { return a[-1] + a[0]; }

    static String fill(int[] i, long[] l, float[] f, double[] d, byte[] b, boolean[] z, char[] c, short[] s, String[] o) {
        for (int k = 0; k <= i.length; k++) i[k] = 7;
        for (int k = 0; k <= l.length; k++) l[k] = 1L << 40;
        for (int k = 0; k <= f.length; k++) f[k] = 1.5f;
        for (int k = 0; k <= d.length; k++) d[k] = 2.25;
        for (int k = 0; k <= b.length; k++) b[k] = (byte) 300;
        for (int k = 0; k <= z.length; k++) z[k] = true;
        for (int k = 0; k <= c.length; k++) c[k] = 'x';
        for (int k = 0; k <= s.length; k++) s[k] = (short) -2;
        for (int k = 0; k <= o.length; k++) o[k] = "w";
        return java.util.Arrays.toString(i) + java.util.Arrays.toString(l) + java.util.Arrays.toString(f)
            + java.util.Arrays.toString(d) + java.util.Arrays.toString(b) + java.util.Arrays.toString(z)
            + java.util.Arrays.toString(c) + java.util.Arrays.toString(s) + java.util.Arrays.toString(o);
    }

    static int nullRead(int[] a) { return a[3]; }
    static void nullWrite(String[] a) { a[-1] = "x"; }
    static void wrongElement(Object[] a) { a[0] = Integer.valueOf(1); }

    static void show(String what, Object result) { System.out.println(what + " " + result + " " + Hooks.take()); }
    static void threw(String what, Runnable r) {
        try { r.run(); System.out.println(what + " returned"); }
        catch (RuntimeException e) { System.out.println(what + " threw " + e.getClass().getSimpleName() + " " + Hooks.take()); }
    }

    public static void main(String[] args) {
        show("ints", ints(new int[] {1, 2, 3}));
        show("longs", longs(new long[] {1L << 33, 1}));
        show("floats", floats(new float[] {0.5f, 0.25f}));
        show("doubles", doubles(new double[] {0.5, 0.125}));
        show("bytes", bytes(new byte[] {-1, 2}));
        show("booleans", booleans(new boolean[] {true, false, true}));
        show("chars", chars(new char[] {'a', 'b'}));
        show("shorts", shorts(new short[] {-3, 300}));
        show("strings", strings(new String[] {"ab", null, "cde"}));
        show("rows", rows(new int[][] {{1}, {2, 3}}));
        show("before", before(new int[] {5}));
        show("fill", fill(new int[2], new long[1], new float[1], new double[1], new byte[1], new boolean[2], new char[1], new short[1], new String[2]));
        threw("nullRead", () -> nullRead(null));
        threw("nullWrite", () -> nullWrite(null));
        threw("wrongElement", () -> wrongElement(new String[1]));
    }
}
"#;

/// Compiles the stand-in hooks and the program, adds the agent's helpers to the hooks class.
fn compile(name: &str) -> std::path::PathBuf {
    let dir = support::scratch(name);
    let classes = support::javac(&dir, &[("repair/rt/Hooks.java", HOOKS), ("Arrays.java", ARRAYS)]);
    let hooks = classes.join("repair/rt/Hooks.class");
    let mut cf = ClassFile::parse(&std::fs::read(&hooks).unwrap()).unwrap();
    let helpers = helper_methods(&mut cf.pool).unwrap();
    cf.methods.extend(helpers);
    std::fs::write(&hooks, cf.to_bytes().unwrap()).unwrap();
    classes
}

fn spec(method: &str, line: Option<u16>, id: i32) -> ObliviousSpec {
    ObliviousSpec { method: MethodTarget::parse(method), line, report_id: id }
}

/// Rewrites `methods` of `Arrays` (each its own report id, from 1) and runs it.
fn run_rewritten(classes: &std::path::Path, methods: &[&str]) -> String {
    let path = classes.join("Arrays.class");
    let mut bytes = std::fs::read(&path).unwrap();
    for (i, m) in methods.iter().enumerate() {
        bytes =
            oblivious(&bytes, &spec(m, None, i as i32 + 1), &ObjectHierarchy).unwrap_or_else(|e| panic!("{m}: {e}")).0;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[classes], "Arrays");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    out
}

#[test]
fn every_element_type_reads_its_default_and_drops_writes_out_of_bounds() {
    let classes = compile("oblivious-all");
    let (ok, _, err) = support::java(&[&classes], "Arrays");
    assert!(!ok && err.contains("ArrayIndexOutOfBoundsException"), "unrewritten, the first loop throws: {err}");

    let methods = [
        "ints",
        "longs",
        "floats",
        "doubles",
        "bytes",
        "booleans",
        "chars",
        "shorts",
        "strings",
        "rows",
        "before",
        "fill",
        "nullRead",
        "nullWrite",
        "wrongElement",
    ];
    let out = run_rewritten(&classes, &methods);
    // Each aaload's helper returns Object, cast back to the array's component type.
    let text = repair_bytecode::javap::disassemble(&std::fs::read(classes.join("Arrays.class")).unwrap()).unwrap();
    for component in ["class java/lang/String", "class [I"] {
        assert!(
            text.lines().zip(text.lines().skip(1)).any(|(call, cast)| call.contains("Hooks.obliviousAaload")
                && cast.contains("checkcast")
                && cast.ends_with(component)),
            "no checkcast to {component} after an obliviousAaload:\n{text}"
        );
    }
    let want = "\
ints 6 1@1
longs 8589934593 1@2
floats 0.75 1@3
doubles 0.625 1@4
bytes 1 1@5
booleans 2 1@6
chars 195 1@7
shorts 297 1@8
strings 205 1@9
rows -1 1@10
before 5 1@11
fill [7, 7][1099511627776][1.5][2.25][44][true, true][x][-2][w, w] 9@12
nullRead threw NullPointerException none
nullWrite threw NullPointerException none
wrongElement threw ArrayStoreException none
";
    assert_eq!(out, want);
}

#[test]
fn a_line_limits_the_rewrite_to_the_accesses_on_that_line() {
    let dir = support::scratch("oblivious-line");
    let source = "public class Lines {\n\
        static int two(int[] a) {\n\
            int first = a[a.length];\n\
            int second = a[a.length + 1];\n\
            return first + second;\n\
        }\n\
        static int none(int x) {\n\
            return x + 1;\n\
        }\n\
        public static void main(String[] args) {\n\
            try { System.out.println(two(new int[] {4})); }\n\
            catch (ArrayIndexOutOfBoundsException e) { System.out.println(\"threw \" + e.getMessage()); }\n\
        }\n\
    }\n";
    let classes = support::javac(&dir, &[("repair/rt/Hooks.java", HOOKS), ("Lines.java", source)]);
    let hooks = classes.join("repair/rt/Hooks.class");
    let mut cf = ClassFile::parse(&std::fs::read(&hooks).unwrap()).unwrap();
    let helpers = helper_methods(&mut cf.pool).unwrap();
    cf.methods.extend(helpers);
    std::fs::write(&hooks, cf.to_bytes().unwrap()).unwrap();
    let path = classes.join("Lines.class");
    let original = std::fs::read(&path).unwrap();

    // Line 3 only: the read on line 4 still throws.
    let (bytes, n) = oblivious(&original, &spec("two", Some(3), 4), &ObjectHierarchy).unwrap();
    assert_eq!(n, 1);
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Lines");
    assert!(ok, "{err}");
    assert_eq!(out, "threw Index 2 out of bounds for length 1\n");

    // Line 4 as well (on top): both reads are oblivious, the sum of two defaults.
    let (bytes, n) = oblivious(&bytes, &spec("two", Some(4), 4), &ObjectHierarchy).unwrap();
    assert_eq!(n, 1);
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Lines");
    assert!(ok, "{err}");
    assert_eq!(out, "0\n");

    // A line without an array access, and a method without one: one error each, naming them.
    let e = oblivious(&original, &spec("two", Some(5), 4), &ObjectHierarchy).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        "method Lines.two([I)I, oblivious: line 5 has no array access; the method's array accesses are on lines 3, 4"
    );
    let e = oblivious(&original, &spec("none", None, 4), &ObjectHierarchy).unwrap_err();
    assert_eq!(
        e.to_string(),
        "method Lines.none(I)I, oblivious: the method has no array access (no xaload or xastore)"
    );
    let e = oblivious(&original, &spec("none", Some(8), 4), &ObjectHierarchy).unwrap_err();
    assert_eq!(
        e.to_string(),
        "method Lines.none(I)I, oblivious: line 8 has no array access, nor has any line of the method"
    );
}
