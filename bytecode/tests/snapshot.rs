//! Golden behaviour of `snapshot`: on a real JVM the hook receives every initialised local at the
//! line, boxed by its declared (or inferred) type, at every hit; the program computes the same.

mod support;

use std::path::{Path, PathBuf};

use repair_bytecode::transform::check_redefinable;
use repair_bytecode::transform::snapshot::{snapshot, CapturedLocal, SnapshotSpec};
use repair_bytecode::transform::MethodTarget;

/// Stands in for the class the agent defines: prints each value with its runtime class.
const HOOKS: &str = r#"
package repair.rt;
public class Hooks {
    public static void snapshot(int id, Object[] locals) {
        StringBuilder b = new StringBuilder("snapshot " + id + ":");
        for (Object o : locals) {
            b.append(' ');
            if (o == null) b.append("null");
            else if (o instanceof int[]) b.append("int[]=").append(java.util.Arrays.toString((int[]) o));
            else b.append(o.getClass().getSimpleName()).append('=').append(o);
        }
        System.out.println(b);
    }
}
"#;

/// `//@x` marks the lines the tests snapshot.
const SHOP: &str = r##"public class Shop extends Base {
    private int size;

    Shop(String name, int size) {
        super( //@before-super
            name + "#" + size); //@no-code
        this.size = size; //@after-super
    }

    long total(String customer, int[] prices) {
        boolean vip = customer.startsWith("V");
        char grade = vip ? 'A' : 'C';
        byte b = 7;
        short sh = 300;
        long sum = 0;
        double rate = 0.5;
        float weight = 1.5f;
        Object tag = new Item("box");
        String note = null;
        sum += b; //@before-loop
        for (int i = 0; i < prices.length; i++) {
            sum += prices[i] * rate; //@loop
        }
        Runnable r = () -> System.out.println("ran " + customer); r.run(); //@lambda
        return sum;
    }

    public String toString() { return "Shop(" + label + "," + size + ")"; }

    public static void main(String[] args) {
        Shop s = new Shop("box", 3);
        System.out.println("total=" + s.total("VIP", new int[] {10, 20, 30}));
    }
}

class Base {
    final String label;
    Base(String label) { this.label = label; }
}

class Item {
    final String what;
    Item(String what) { this.what = what; }
    public String toString() { return "Item(" + what + ")"; }
}
"##;

fn line(marker: &str) -> u16 {
    let tag = format!("//@{marker}");
    SHOP.lines().position(|l| l.ends_with(&tag)).expect("a marked line") as u16 + 1
}

fn at(marker: &str, id: i32) -> SnapshotSpec {
    SnapshotSpec { method: None, line: line(marker), snapshot_id: id }
}

fn compile(name: &str, flags: &[&str]) -> (PathBuf, Vec<u8>) {
    let dir = support::scratch(name);
    let classes = support::javac_with(&dir, flags, &[("Shop.java", SHOP), ("repair/rt/Hooks.java", HOOKS)]);
    let bytes = std::fs::read(classes.join("Shop.class")).unwrap();
    (classes, bytes)
}

/// Applies the snapshots one after another; each result must be redefinable over the original.
fn apply(original: &[u8], specs: &[SnapshotSpec]) -> (Vec<u8>, Vec<Vec<CapturedLocal>>) {
    let mut bytes = original.to_vec();
    let mut lists = Vec::new();
    for s in specs {
        let (b, captured) = snapshot(&bytes, s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        check_redefinable(original, &b).unwrap();
        bytes = b;
        lists.push(captured);
    }
    (bytes, lists)
}

/// Runs the program with `bytes` as `Shop`; returns (snapshot lines, other lines).
fn run(classes: &Path, bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let (ok, before, err) = support::java(&[classes], "Shop");
    assert!(ok, "{err}");
    std::fs::write(classes.join("Shop.class"), bytes).unwrap();
    let (ok, out, err) = support::java(&[classes], "Shop");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    let (snaps, rest): (Vec<String>, Vec<String>) =
        out.lines().map(str::to_string).partition(|l| l.starts_with("snapshot "));
    assert_eq!(rest, before.lines().collect::<Vec<_>>(), "the program computes the same");
    (snaps, rest)
}

/// (slot, name, type, declared) of each captured local.
fn shape(list: &[CapturedLocal]) -> Vec<(u16, &str, &str, bool)> {
    list.iter().map(|c| (c.slot, c.name.as_str(), c.type_name.as_str(), c.declared)).collect()
}

#[test]
fn snapshot_passes_every_local_at_each_hit() {
    let (classes, original) = compile("snapshot", &["-g"]);
    let (bytes, lists) =
        apply(&original, &[at("loop", 1), at("before-loop", 2), at("before-super", 3), at("after-super", 4)]);
    let (snaps, rest) = run(&classes, &bytes);
    assert_eq!(rest, ["ran VIP", "total=37"]);
    let locals = "Shop=Shop(box#3,3) String=VIP int[]=[10, 20, 30] Boolean=true Character=A Byte=7 Short=300";
    assert_eq!(
        snaps,
        [
            // `this` is not constructed before super(...): only the arguments.
            "snapshot 3: String=box Integer=3".to_string(),
            "snapshot 4: Shop=Shop(box#3,0) String=box Integer=3".to_string(),
            format!("snapshot 2: {locals} Long=0 Double=0.5 Float=1.5 Item=Item(box) null"),
            format!("snapshot 1: {locals} Long=7 Double=0.5 Float=1.5 Item=Item(box) null Integer=0"),
            format!("snapshot 1: {locals} Long=12 Double=0.5 Float=1.5 Item=Item(box) null Integer=1"),
            format!("snapshot 1: {locals} Long=22 Double=0.5 Float=1.5 Item=Item(box) null Integer=2"),
        ]
    );
    let mut total = vec![
        (0, "this", "Shop", true),
        (1, "customer", "java.lang.String", true),
        (2, "prices", "int[]", true),
        (3, "vip", "boolean", true),
        (4, "grade", "char", true),
        (5, "b", "byte", true),
        (6, "sh", "short", true),
        (7, "sum", "long", true),
        (9, "rate", "double", true),
        (11, "weight", "float", true),
        (12, "tag", "java.lang.Object", true),
        (13, "note", "java.lang.String", true),
    ];
    assert_eq!(shape(&lists[1]), total);
    total.push((14, "i", "int", true));
    assert_eq!(shape(&lists[0]), total);
    assert_eq!(shape(&lists[2]), [(1, "name", "java.lang.String", true), (2, "size", "int", true)]);
    assert_eq!(
        shape(&lists[3]),
        [(0, "this", "Shop", true), (1, "name", "java.lang.String", true), (2, "size", "int", true)]
    );
}

#[test]
fn without_a_local_variable_table_names_are_slots_and_types_inferred() {
    // `-g:lines`: line numbers but no LocalVariableTable (`-g:none` drops both; see below).
    let (classes, original) = compile("snapshot-nolvt", &["-g:lines"]);
    let (bytes, lists) = apply(&original, &[at("loop", 1), at("before-loop", 2)]);
    let (snaps, _) = run(&classes, &bytes);
    // int-like locals are boxed as Integer when nothing says they are boolean, char, ...
    let locals = "Shop=Shop(box#3,3) String=VIP int[]=[10, 20, 30] Integer=1 Integer=65 Integer=7 Integer=300";
    assert_eq!(
        snaps,
        [
            format!("snapshot 2: {locals} Long=0 Double=0.5 Float=1.5 Item=Item(box) null"),
            format!("snapshot 1: {locals} Long=7 Double=0.5 Float=1.5 Item=Item(box) null Integer=0"),
            format!("snapshot 1: {locals} Long=12 Double=0.5 Float=1.5 Item=Item(box) null Integer=1"),
            format!("snapshot 1: {locals} Long=22 Double=0.5 Float=1.5 Item=Item(box) null Integer=2"),
        ]
    );
    // (slot, name, type, declared) with names slotN and nothing declared.
    let slots = |types: &[(u16, &str)]| -> Vec<(u16, String, String, bool)> {
        types.iter().map(|&(s, t)| (s, format!("slot{s}"), t.to_string(), false)).collect()
    };
    let owned = |l: &[CapturedLocal]| -> Vec<(u16, String, String, bool)> {
        l.iter().map(|c| (c.slot, c.name.clone(), c.type_name.clone(), c.declared)).collect()
    };
    let common = [(0, "Shop"), (1, "java.lang.String"), (2, "int[]"), (3, "int"), (4, "int"), (5, "int"), (6, "int")];
    // Before the loop no frame intervenes since the stores: `tag` is the Item it was given and
    // `note` a known null. In the loop, javac's frame at the loop head declares them.
    let before: Vec<_> =
        common.iter().copied().chain([(7, "long"), (9, "double"), (11, "float"), (12, "Item"), (13, "null")]).collect();
    assert_eq!(owned(&lists[1]), slots(&before));
    let inside: Vec<_> = common
        .iter()
        .copied()
        .chain([
            (7, "long"),
            (9, "double"),
            (11, "float"),
            (12, "java.lang.Object"),
            (13, "java.lang.String"),
            (14, "int"),
        ])
        .collect();
    assert_eq!(owned(&lists[0]), slots(&inside));
}

#[test]
fn snapshot_refuses_what_it_cannot_place() {
    let (_, bytes) = compile("snapshot-refuse", &["-g"]);
    // The continuation line of `super(` has no instruction of its own.
    let err = snapshot(&bytes, &at("no-code", 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "snapshot: line {} of class Shop has no code; lines with code: 5, 7-8, 11-22, 24-25, 28, 31-33",
            line("no-code")
        )
    );
    let mut in_total = at("no-code", 1);
    in_total.method = Some(MethodTarget::parse("total"));
    let err = snapshot(&bytes, &in_total).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "snapshot: line {} of class Shop has no code in method total; lines with code in that method: 11-22, 24-25",
            line("no-code")
        )
    );

    // The lambda's body is on the line of the statement creating it.
    let err = snapshot(&bytes, &at("lambda", 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "snapshot: line {} of class Shop has code in several methods: total(Ljava/lang/String;[I)J, \
             lambda$total$0(Ljava/lang/String;)V; name one",
            line("lambda")
        )
    );
    let mut named = at("lambda", 1);
    named.method = Some(MethodTarget::parse("total(Ljava/lang/String;[I)J"));
    let (new, captured) = snapshot(&bytes, &named).unwrap();
    check_redefinable(&bytes, &new).unwrap();
    // Past the loop, the loop variable's slot is top again and is left out.
    assert_eq!(captured.last().map(|c| (c.slot, c.name.as_str())), Some((13, "note")));

    let (_, none) = compile("snapshot-none", &["-g:none"]);
    let err = snapshot(&none, &at("loop", 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "snapshot: class Shop has no LineNumberTable (compiled with -g:none?): it has no lines to snapshot"
    );
}
