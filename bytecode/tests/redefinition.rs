//! `incompatibilities` on pairs of real javac builds: every reason HotSpot would refuse the second
//! build as a redefinition of the first, and nothing else.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use repair_bytecode::redefinition::{check_redefinable, incompatibilities, Incompatibility};
use repair_bytecode::ErrorKind;

/// `(file, build 1, build 2)`: each class's two versions.
const SOURCES: &[(&str, &str, &str)] = &[
    (
        "Body.java",
        "package shop; public class Body { private int count; private final String tag = \"a\";
            public int next() { return ++count; }
            public Runnable task() { return () -> System.out.println(tag); } }",
        "package shop; public class Body { private int count; private final String tag = \"a\";

            public int next() { count += 2; return count; }
            public Runnable task() { return () -> System.out.println(tag + \"!\"); } }",
    ),
    (
        "AddMethod.java",
        "package shop; public class AddMethod { public int size() { return 1; } }",
        "package shop; public class AddMethod { public int size() { return 1; } public void reset() { } }",
    ),
    (
        "RemoveMethod.java",
        "package shop; public class RemoveMethod { int twice(int x) { return 2 * x; } void run() { } }",
        "package shop; public class RemoveMethod { void run() { } }",
    ),
    (
        "FieldType.java",
        "package shop; public class FieldType { private int total; void add() { total++; } }",
        "package shop; public class FieldType { private long total; void add() { total++; } }",
    ),
    (
        "FieldOrder.java",
        "package shop; public class FieldOrder { int a; String b; double c; }",
        "package shop; public class FieldOrder { double c; int a; String b; }",
    ),
    (
        "Modifiers.java",
        "package shop; public class Modifiers { private int hits; public void run() { } }",
        "package shop; public final class Modifiers { private static int hits; public synchronized void run() { } }",
    ),
    (
        "Overload.java",
        "package shop; public class Overload { void put(int x) { } void put(String s) { } }",
        "package shop; public class Overload { void put(long x) { } void put(String s) { } }",
    ),
    (
        "Lambdas.java",
        "package shop; import java.util.function.*; public class Lambdas {
            public int run(String s) {
                Function<String, Integer> len = x -> x.length();
                return len.apply(s);
            } }",
        "package shop; import java.util.function.*; public class Lambdas {
            public int run(String s) {
                Supplier<String> fallback = () -> \"none\";
                Function<String, Integer> len = x -> x.length();
                return len.apply(s == null ? fallback.get() : s);
            } }",
    ),
    (
        "Appended.java",
        "package shop; import java.util.function.*; public class Appended {
            public int run(String s) {
                Function<String, Integer> len = x -> x.length();
                return len.apply(s);
            } }",
        "package shop; import java.util.function.*; public class Appended {
            public int run(String s) {
                Function<String, Integer> len = x -> x.length();
                Supplier<String> fallback = () -> \"none\";
                return len.apply(s == null ? fallback.get() : s);
            } }",
    ),
    (
        "Nested.java",
        "package shop; public class Nested { int x; }",
        "package shop; public class Nested { int x; static class Helper { } }",
    ),
    ("Base.java", "package shop; public class Base { }", "package shop; public class Base { }"),
    (
        "Several.java",
        "package shop; public class Several implements Runnable {
            private int a;
            public void run() { }
            public int size() { return a; } }",
        "package shop; public class Several extends Base implements Runnable, java.io.Serializable {
            private int a;
            private String label;
            public void run() { }
            public long size() { return a; }
            public void clear() { a = 0; }
            class Part { } }",
    ),
    (
        "Shape.java",
        "package shop; public sealed class Shape permits Circle { }",
        "package shop; public sealed class Shape permits Circle, Square { }",
    ),
    (
        "Circle.java",
        "package shop; public final class Circle extends Shape { }",
        "package shop; public final class Circle extends Shape { }",
    ),
    (
        "Square.java",
        "package shop; public final class Square { }",
        "package shop; public final class Square extends Shape { }",
    ),
    (
        "Point.java",
        "package shop; public record Point(int x, int y) { }",
        "package shop; public record Point(int x, long y) { }",
    ),
];

/// Both builds, compiled once for all tests.
fn builds() -> &'static (PathBuf, PathBuf) {
    static BUILDS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILDS.get_or_init(|| {
        let files = |pick: fn(&(&'static str, &'static str, &'static str)) -> (String, &'static str)| {
            SOURCES.iter().map(pick).collect::<Vec<_>>()
        };
        let compile = |name: &str, files: Vec<(String, &str)>| {
            let files: Vec<(&str, &str)> = files.iter().map(|(f, s)| (f.as_str(), *s)).collect();
            support::javac(&support::scratch(name), &files)
        };
        (
            compile("redefinition-1", files(|s| (format!("shop/{}", s.0), s.1))),
            compile("redefinition-2", files(|s| (format!("shop/{}", s.0), s.2))),
        )
    })
}

fn class(build: &Path, name: &str) -> Vec<u8> {
    std::fs::read(build.join("shop").join(format!("{name}.class"))).unwrap()
}

/// The incompatibilities of `name`'s second build against its first, as `member: reason`.
fn diff(name: &str) -> Vec<String> {
    let (one, two) = builds();
    render(incompatibilities(&class(one, name), &class(two, name)).unwrap())
}

fn render(list: Vec<Incompatibility>) -> Vec<String> {
    list.into_iter().map(|i| format!("{}: {}", i.member, i.reason)).collect()
}

#[test]
fn a_body_only_change_is_compatible() {
    let (one, two) = builds();
    assert_ne!(class(one, "Body"), class(two, "Body"), "the builds differ");
    assert_eq!(diff("Body"), Vec::<String>::new());
    check_redefinable(&class(one, "Body"), &class(two, "Body")).unwrap();
}

#[test]
fn an_added_public_method_is_reported() {
    assert_eq!(diff("AddMethod"), ["method shop.AddMethod.reset()V: would be added: redefinition cannot add a method"]);
}

#[test]
fn a_removed_method_is_reported() {
    assert_eq!(
        diff("RemoveMethod"),
        ["method shop.RemoveMethod.twice(I)I: would be removed: redefinition cannot remove a method"]
    );
}

#[test]
fn a_field_type_change_is_one_type_change() {
    assert_eq!(
        diff("FieldType"),
        ["field shop.FieldType.total: type changes from int to long: redefinition cannot change a field's type"]
    );
}

#[test]
fn reordered_fields_are_reported_as_an_order_change() {
    assert_eq!(
        diff("FieldOrder"),
        ["class shop.FieldOrder: the fields change order from a, b, c to c, a, b: \
          redefinition needs the fields in the same order"]
    );
}

#[test]
fn modifier_changes_are_named_in_words() {
    assert_eq!(
        diff("Modifiers"),
        [
            "class shop.Modifiers: modifiers change from public to public final: redefinition cannot change them",
            "field shop.Modifiers.hits: modifiers change from private to private static: \
             redefinition cannot change them",
            "method shop.Modifiers.run()V: modifiers change from public to public synchronized: \
             redefinition cannot change them",
        ]
    );
}

#[test]
fn an_overload_whose_signature_changes_is_reported_once() {
    assert_eq!(
        diff("Overload"),
        ["method shop.Overload.put(I)V: signature changes from (I)V to (J)V: redefinition cannot change a signature"]
    );
}

#[test]
fn a_lambda_inserted_before_another_is_reported_as_renumbering() {
    assert_eq!(
        diff("Lambdas"),
        ["method shop.Lambdas.run: its lambdas are renumbered (lambda$run$0 is now lambda$run$1; \
          lambda$run$0 is a new lambda): javac numbers a method's lambdas in source order, so adding, removing or \
          moving one renames the others, and the lambda objects the running build already created call the old \
          method names, which this redefinition would remove; keep the existing lambdas in the same order in the \
          source (a lambda added after them is still a new method, which needs a restart) or restart with the new \
          build"]
    );
}

#[test]
fn a_lambda_appended_after_the_others_is_a_new_lambda_not_a_renumbering() {
    assert_eq!(
        diff("Appended"),
        ["method shop.Appended.run: its lambdas change (lambda$run$1 is a new lambda): each lambda body is a \
          method, which redefinition cannot add, and javac numbers a method's lambdas in source order, so one \
          inserted before others also renames them; restart with the new build"]
    );
}

#[test]
fn a_new_nested_class_changes_nest_members() {
    assert_eq!(
        diff("Nested"),
        ["class shop.Nested: NestMembers gains shop.Nested$Helper: a new nested class, \
          which redefinition cannot add to the nest"]
    );
}

#[test]
fn a_new_permitted_subclass_is_reported() {
    assert_eq!(
        diff("Shape"),
        ["class shop.Shape: PermittedSubclasses gains shop.Square: \
          redefinition cannot change which subclasses a sealed class permits"]
    );
}

#[test]
fn a_record_component_change_is_reported_with_what_follows_from_it() {
    assert_eq!(
        diff("Point"),
        [
            "class shop.Point: Record components change from (int x, int y) to (int x, long y): \
             redefinition cannot change a record's components",
            "field shop.Point.y: type changes from int to long: redefinition cannot change a field's type",
            "method shop.Point.<init>(II)V: signature changes from (II)V to (IJ)V: \
             redefinition cannot change a signature",
            "method shop.Point.y()I: signature changes from ()I to ()J: redefinition cannot change a signature",
        ]
    );
}

#[test]
fn a_class_of_another_name_is_one_incompatibility() {
    let (one, two) = builds();
    let list = render(incompatibilities(&class(one, "Body"), &class(two, "Several")).unwrap());
    assert_eq!(list, ["class shop.Body: the new bytes define shop.Several: redefinition must keep the class name"]);
}

const SEVERAL: [&str; 6] = [
    "class shop.Several: the superclass changes from java.lang.Object to shop.Base: \
     redefinition cannot change the hierarchy",
    "class shop.Several: the class now implements java.io.Serializable: redefinition cannot change the hierarchy",
    "class shop.Several: NestMembers gains shop.Several$Part: a new nested class, \
     which redefinition cannot add to the nest",
    "field shop.Several.label: would be added: redefinition cannot add a field",
    "method shop.Several.size()I: signature changes from ()I to ()J: redefinition cannot change a signature",
    "method shop.Several.clear()V: would be added: redefinition cannot add a method",
];

#[test]
fn several_problems_are_all_listed() {
    assert_eq!(diff("Several"), SEVERAL);
}

#[test]
fn check_redefinable_refuses_with_the_first_incompatibility() {
    let (one, two) = builds();
    let err = check_redefinable(&class(one, "Several"), &class(two, "Several")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused);
    assert_eq!(format!("{}: {}", err.context, err.reason), SEVERAL[0]);
    // The old path still answers for existing callers.
    let old = repair_bytecode::transform::check_redefinable(&class(one, "Several"), &class(two, "Several"));
    assert_eq!(old.unwrap_err(), err);
}

/// Redefines each class named on the command line with its bytes from the directory given first,
/// printing `Name: accepted` or `Name: refused`.
const AGENT: &str = r#"
import java.lang.instrument.*;
import java.nio.file.*;
public class Agent {
    static Instrumentation inst;
    public static void premain(String a, Instrumentation i) { inst = i; }
    public static void main(String[] args) throws Exception {
        for (int k = 1; k < args.length; k++) {
            Class<?> c = Class.forName("shop." + args[k]);
            byte[] b = Files.readAllBytes(Paths.get(args[0], "shop", args[k] + ".class"));
            String verdict = "accepted";
            try { inst.redefineClasses(new ClassDefinition(c, b)); }
            catch (UnsupportedOperationException e) { verdict = "refused"; }
            System.out.println(args[k] + ": " + verdict);
        }
    }
}
"#;

#[test]
fn hotspot_refuses_exactly_the_pairs_with_incompatibilities() {
    let (one, two) = builds();
    let dir = support::scratch("redefinition-agent");
    let agent = support::javac(&dir, &[("Agent.java", AGENT)]);
    std::fs::write(dir.join("manifest"), "Premain-Class: Agent\nCan-Redefine-Classes: true\n").unwrap();
    let jar = dir.join("agent.jar");
    let bin = support::java_home().join("bin");
    let status = Command::new(bin.join("jar"))
        .arg("cfm")
        .arg(&jar)
        .arg(dir.join("manifest"))
        .args(["-C".as_ref(), agent.as_os_str(), ".".as_ref()])
        .status()
        .expect("jar runs");
    assert!(status.success());
    // Square's build 2 extends Shape, which the loaded build 1 of Shape does not permit: HotSpot
    // fails it while loading the new bytes (VerifyError), before comparing the versions.
    let names: Vec<&str> = SOURCES.iter().map(|s| s.0.trim_end_matches(".java")).filter(|&n| n != "Square").collect();
    let out = Command::new(bin.join("java"))
        .arg(format!("-javaagent:{}", jar.display()))
        .arg("-cp")
        .arg(std::env::join_paths([&jar, one]).unwrap())
        .arg("Agent")
        .arg(two)
        .args(&names)
        .output()
        .expect("java runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours: Vec<String> = names
        .iter()
        .map(|n| {
            let accepted = incompatibilities(&class(one, n), &class(two, n)).unwrap().is_empty();
            format!("{n}: {}", if accepted { "accepted" } else { "refused" })
        })
        .collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(), ours);
    assert!(ours.iter().filter(|v| v.ends_with("accepted")).count() >= 2, "{ours:?}");
}
