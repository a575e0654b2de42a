//! Our listing against the JDK's `javap -c`: the same instructions at the same offsets.

mod support;

use std::process::Command;

use repair_bytecode::javap::disassemble;

/// `(offset, mnemonic)` of every instruction line of a listing.
fn instructions(listing: &str) -> Vec<(u32, String)> {
    listing
        .lines()
        .filter_map(|l| {
            let (pc, rest) = l.trim_start().split_once(": ")?;
            let pc = pc.parse().ok()?;
            let op = rest.split_whitespace().next()?.to_string();
            op.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_').then_some((pc, op))
        })
        .collect()
}

#[test]
fn instructions_match_the_jdks_javap() {
    let dir = support::scratch("javap");
    let src = r#"
import java.util.*;
public class Listing {
    static int sw(int k) { switch (k) { case 1: return 10; case 2: return 20; case 7: return 70; default: return -1; } }
    static int lk(int k) { switch (k) { case 1: return 10; case 1000: return 20; default: return -1; } }
    static String cat(String a, long b) { return a + b; }
    static double mix(double[] d, Object o) { if (o instanceof String) return d.length; long[][] m = new long[2][3]; return m[1][2] + d[0]; }
    static int loop(List<Integer> xs) { int s = 0; for (int x : xs) { s += x; } try { s /= xs.size(); } catch (ArithmeticException e) { s = -1; } return s; }
}
"#;
    let classes = support::javac(&dir, &[("Listing.java", src)]);
    let path = classes.join("Listing.class");
    let ours = disassemble(&std::fs::read(&path).unwrap()).unwrap();
    let out = Command::new(support::java_home().join("bin/javap")).arg("-c").arg("-p").arg(&path).output().unwrap();
    let theirs = String::from_utf8_lossy(&out.stdout);
    let (a, b) = (instructions(&ours), instructions(&theirs));
    assert!(b.len() > 60, "javap listing parsed: {theirs}");
    assert_eq!(a, b, "ours:\n{ours}");
    assert!(ours.contains("// Method java/lang/Object.\"<init>\":()V"), "{ours}");
    assert!(ours.contains("Exception table:"), "{ours}");
}
