//! Golden behaviour of `rethrow`: compile, rewrite, run on HotSpot (verification on), check that
//! the callers' own handlers run; and the exception tables read as the policy engine reads them.

mod support;

use repair_bytecode::transform::rethrow::{
    declared_exceptions, handlers_at, rethrow, RethrowSpec, ThrowAs, ThrowableConstructor,
};
use repair_bytecode::transform::MethodTarget;

const LOADER: &str = r#"
import java.io.IOException;
class OnlyMessage extends Exception { OnlyMessage(String m) { super(m); } }
class Bare extends RuntimeException { Bare() { super("bare"); } }
public class Loader {
    int n;
    Loader(int k) { n = k; }
    Loader(String s) throws IOException { this(s.isEmpty() ? 0 : 1); n += Integer.parseInt(s); }
    static int parse(String s) throws IOException { return Integer.parseInt(s.trim()); }
    static int parseQuiet(String s) throws OnlyMessage { return Integer.parseInt(s); }
    static int parseBare(String s) { return Integer.parseInt(s); }
    static String why(Throwable e) {
        return e.getClass().getName() + "(" + e.getMessage() + ") cause "
            + (e.getCause() == null ? "none" : e.getCause().getClass().getName());
    }
    static String load(String s) {
        try {
            return "ok " + parse(s); // call
        } catch (IOException e) {
            return "error " + why(e);
        } finally {
            System.out.print("");
        }
    }
    static String nested(String s) {
        try {
            try {
                return "ok " + parseQuiet(s) + parseBare(s); // nested call
            } catch (IllegalStateException | NullPointerException e) {
                return "state";
            }
        } catch (OnlyMessage e) {
            return "quiet " + why(e);
        } catch (Bare e) {
            return "bare " + why(e);
        }
    }
    public static void main(String[] a) throws Exception {
        System.out.println(load(" 12 "));
        System.out.println(load("x"));
        System.out.println(nested("7"));
        System.out.println(nested("y"));
        try { System.out.println("n=" + new Loader("z").n); } catch (IOException e) { System.out.println("ctor " + why(e)); }
        System.out.println("n=" + new Loader("5").n);
    }
}
"#;

fn spec(method: &str, class: &str, constructor: ThrowableConstructor) -> RethrowSpec {
    RethrowSpec {
        method: MethodTarget::parse(method),
        catch: vec!["java/lang/NumberFormatException".into()],
        throw: ThrowAs { class: class.into(), constructor },
        report_id: None,
    }
}

#[test]
fn rethrown_exceptions_run_the_callers_own_handlers() {
    let dir = support::scratch("rethrow");
    let classes = support::javac(&dir, &[("Loader.java", LOADER)]);
    let path = classes.join("Loader.class");
    let mut bytes = std::fs::read(&path).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Loader");
    assert!(!ok && out == "ok 12\n", "unpatched, the NumberFormatException escapes: {out}{err}");
    for s in [
        spec("parse", "java/io/IOException", ThrowableConstructor::MessageCause),
        spec("parseQuiet", "OnlyMessage", ThrowableConstructor::Message),
        spec("parseBare", "Bare", ThrowableConstructor::NoArgs),
        // A constructor with a branch before this(...): the general (decoded) path.
        spec("<init>(Ljava/lang/String;)V", "java/io/IOException", ThrowableConstructor::MessageCause),
    ] {
        bytes = rethrow(&bytes, &s).unwrap_or_else(|e| panic!("{}: {e}", s.method));
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Loader");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        out,
        "ok 12\n\
         error java.io.IOException(For input string: \"x\") cause java.lang.NumberFormatException\n\
         ok 77\n\
         quiet OnlyMessage(For input string: \"y\") cause none\n\
         ctor java.io.IOException(For input string: \"z\") cause java.lang.NumberFormatException\n\
         n=6\n",
        "stderr:\n{err}"
    );
    let quiet_only = rethrow(&bytes, &spec("parseBare", "Bare", ThrowableConstructor::NoArgs));
    assert!(quiet_only.is_ok(), "a method already rethrowing can be rethrown again: {quiet_only:?}");
    let missing = rethrow(&bytes, &spec("absent", "Bare", ThrowableConstructor::NoArgs)).unwrap_err();
    assert_eq!(missing.to_string(), "class Loader: no method absent");
}

#[test]
fn the_handlers_around_a_call_are_read_from_the_exception_table_at_its_line() {
    let dir = support::scratch("rethrow-handlers");
    let classes = support::javac(&dir, &[("Loader.java", LOADER)]);
    let bytes = std::fs::read(classes.join("Loader.class")).unwrap();
    let line_of = |marker: &str| LOADER.lines().position(|l| l.contains(marker)).unwrap() as u32 + 1;
    let at = |method: &str, line| handlers_at(&bytes, &MethodTarget::parse(method), Some(line), None).unwrap();
    let load = at("load", line_of("// call"));
    // The finally's catch-any entries are not handlers a rethrow can aim at.
    assert_eq!(load.catch, ["java.io.IOException"]);
    assert_eq!(load.source_file.as_deref(), Some("Loader.java"));
    assert_eq!(
        at("nested", line_of("// nested call")).catch,
        ["java.lang.IllegalStateException", "java.lang.NullPointerException", "OnlyMessage", "Bare"],
        "innermost first, as the JVM tries them"
    );
    assert!(at("load", line_of("return \"error \"")).catch.is_empty(), "a line inside the handler itself");
    assert!(at("main", line_of("load(\"x\")")).catch.is_empty(), "no handler around the call");
    assert_eq!(declared_exceptions(&bytes, &MethodTarget::parse("parse")).unwrap(), ["java.io.IOException"]);
    assert!(declared_exceptions(&bytes, &MethodTarget::parse("parseBare")).unwrap().is_empty());
    // Without a line table, the frame's own instruction: offset 0 of `load` is inside its try.
    let stripped = support::javac_with(&support::scratch("rethrow-nolines"), &["-g:none"], &[("Loader.java", LOADER)]);
    let bytes = std::fs::read(stripped.join("Loader.class")).unwrap();
    let h = handlers_at(&bytes, &MethodTarget::parse("load"), Some(line_of("// call")), Some(0)).unwrap();
    assert_eq!((h.catch, h.source_file), (vec!["java.io.IOException".to_string()], None));
}
