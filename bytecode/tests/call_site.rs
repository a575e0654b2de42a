//! Golden behaviour of the call-site guard: only the named call falls back; values the method
//! had computed before the call survive it.

mod support;

use repair_bytecode::hierarchy::ObjectHierarchy;
use repair_bytecode::transform::call_site::guard_call_site;
use repair_bytecode::transform::{CallSite, Constant, Fallback, GuardSpec, MethodTarget};

const APP: &str = r#"
public class App {
    static int risky(int k) { if (k < 0) throw new IllegalArgumentException("neg"); return k * 2; }
    static long div(long a, long b) { return a / b; }
    static long safeDiv(long a, long b) { return -1; }
    static int first() { return 7; }
    static long mixed(long base, int k) {
        long r = base * 10 + div(base, k);
        return r + Math.max(first(), risky(k)) + risky(k);
    }
    static String label(String s, int k) { return "<" + s.substring(k) + ">"; }
    public static void main(String[] a) {
        System.out.println(mixed(5, 1));
        System.out.println(mixed(5, 0));
        System.out.println(label("hello", 2));
        System.out.println(label("hello", 9));
        try { System.out.println(mixed(5, -1)); } catch (IllegalArgumentException e) { System.out.println("second risky still throws"); }
    }
}
"#;

fn spec(method: &str, call: &str, occurrence: u32, catch: &str, fallback: Fallback) -> GuardSpec {
    GuardSpec {
        method: MethodTarget::parse(method),
        catch: vec![catch.into()],
        fallback,
        call_site: Some(CallSite { owner: None, name: call.into(), descriptor: None, occurrence }),
        report_id: None,
    }
}

#[test]
fn only_the_guarded_call_falls_back_and_the_stack_survives() {
    let dir = support::scratch("call-site");
    let classes = support::javac(&dir, &[("App.java", APP)]);
    let path = classes.join("App.class");
    let (ok, before, _) = support::java(&[&classes], "App");
    assert!(!ok, "the original throws: {before}");
    let mut bytes = std::fs::read(&path).unwrap();
    let specs = [
        spec(
            "mixed",
            "div",
            1,
            "java.lang.ArithmeticException",
            Fallback::StaticMethod { class: "App".into(), name: "safeDiv".into() },
        ),
        spec("mixed", "risky", 1, "java.lang.IllegalArgumentException", Fallback::Constant(Constant::Int(100))),
        spec(
            "label",
            "substring",
            1,
            "java.lang.StringIndexOutOfBoundsException",
            Fallback::Constant(Constant::String("?".into())),
        ),
    ];
    for s in &specs {
        bytes = guard_call_site(&bytes, s, &ObjectHierarchy).unwrap_or_else(|e| panic!("{:?}: {e}", s.call_site));
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "App");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    // mixed(5,1) = 50 + 5 + max(7,2) + 2; mixed(5,0) = 50 + (-1) + max(7,0) + 0;
    // mixed(5,-1): the first risky falls back to 100, the second is not guarded and throws.
    assert_eq!(out, "64\n56\n<llo>\n<?>\nsecond risky still throws\n");
}

#[test]
fn a_missing_call_is_named_with_the_count_found() {
    let dir = support::scratch("call-site-missing");
    let classes = support::javac(&dir, &[("App.java", APP)]);
    let bytes = std::fs::read(classes.join("App.class")).unwrap();
    let err =
        guard_call_site(&bytes, &spec("mixed", "risky", 3, "java.lang.Throwable", Fallback::Default), &ObjectHierarchy)
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "method App.mixed(JI)J, guard: call #3 to risky not found: the method makes 2 such call(s)"
    );
    let err = guard_call_site(
        &bytes,
        &spec("<init>", "<init>", 1, "java.lang.Throwable", Fallback::Default),
        &ObjectHierarchy,
    )
    .unwrap_err();
    assert!(err.to_string().contains("constructor call"), "{err}");
}

#[test]
fn a_call_is_found_by_its_line_and_callee_name_as_a_stack_trace_gives_them() {
    use repair_bytecode::transform::call_site::call_on_line;
    let dir = support::scratch("call-site-line");
    let classes = support::javac(&dir, &[("App.java", APP)]);
    let bytes = std::fs::read(classes.join("App.class")).unwrap();
    let mixed = MethodTarget::parse("mixed");
    // Line 9 of APP is `return r + Math.max(first(), risky(k)) + risky(k);`: its first risky.
    let risky = call_on_line(&bytes, &mixed, 9, "risky").unwrap();
    assert_eq!((risky.name.as_str(), risky.descriptor.as_deref(), risky.occurrence), ("risky", Some("(I)I"), 1));
    let div = call_on_line(&bytes, &mixed, 8, "div").unwrap();
    assert_eq!((div.name.as_str(), div.descriptor.as_deref(), div.occurrence), ("div", Some("(JJ)J"), 1));
    assert_eq!(
        call_on_line(&bytes, &mixed, 8, "risky").unwrap_err().to_string(),
        "line 8 of mixed: makes no call of risky"
    );
    assert_eq!(call_on_line(&bytes, &mixed, 99, "risky").unwrap_err().to_string(), "line 99: is not a line of mixed");
}
