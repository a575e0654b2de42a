//! Hot deploy on real JVMs: a second build of a service, with fixes in classes loaded and not yet
//! loaded, deployed live under load as one patch; rolled back as one; restored after kill -9 while
//! the JVM runs the old build and dropped once it runs the new one; and every build the JVM could
//! not take refused with the class, the member and the reason, changing nothing.

mod agent_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use agent_support::{agentpath, default_jdk, repairctl_json as json, Jdk, Service, TempDir};

const MAIN: &str = r#"
package shop;
import java.io.*;
public class Main {
    public static void main(String[] a) throws Exception {
        Thread load = new Thread(() -> { while (true) { Counter.hit(); Cart.total(new int[] {1, 2, 3}); } });
        load.setDaemon(true);
        load.start();
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String l; (l = in.readLine()) != null; ) {
            if (l.equals("late")) System.out.println("LATE " + Late.value());
            else System.out.println("STATE total=" + Cart.total(new int[] {1, 2, 3}) + " tax=" + Tax.rate(100)
                + " calls=" + Cart.calls + " util=" + Util.name() + " limit=" + Counter.limit);
        }
    }
}
"#;

/// The first build's bug: the sum skips the first element (5 instead of 6).
const CART: &str = r#"
package shop;
public class Cart {
    static volatile long calls;
    public static int total(int[] xs) { calls++; int s = 0; for (int i = 1; i < xs.length; i++) s += xs[i]; return s; }
}
"#;

/// The first build's bug: per mille instead of per cent (0 instead of 7).
const TAX: &str = r#"
package shop;
import java.util.function.*;
public class Tax {
    public static int rate(int amount) { IntSupplier base = () -> 7; return amount * base.getAsInt() / 1000; }
    public static int round(int x) { IntUnaryOperator r = v -> v; return r.applyAsInt(x); }
}
"#;

const COUNTER: &str = r#"
package shop;
public class Counter {
    static int limit = 10;
    static final java.util.concurrent.atomic.AtomicLong hits = new java.util.concurrent.atomic.AtomicLong();
    public static void hit() { hits.incrementAndGet(); }
}
"#;

/// Not loaded until the `late` command.
const LATE: &str = "package shop;\npublic class Late { public static String value() { return \"wrong\"; } }\n";
const UTIL: &str = "package shop;\npublic class Util { public static String name() { return \"util\"; } }\n";

fn first_build() -> Vec<(&'static str, String)> {
    vec![
        ("Main.java", MAIN.to_string()),
        ("Cart.java", CART.to_string()),
        ("Tax.java", TAX.to_string()),
        ("Counter.java", COUNTER.to_string()),
        ("Late.java", LATE.to_string()),
        ("Util.java", UTIL.to_string()),
    ]
}

/// The fixed build: Cart, Tax and Late fixed, a class added, the rest as it was.
fn fixed_build() -> Vec<(&'static str, String)> {
    let mut b = first_build();
    for (name, text) in &mut b {
        *text = match *name {
            "Cart.java" => text.replace("int i = 1;", "int i = 0;"),
            "Tax.java" => text.replace("/ 1000", "/ 100"),
            "Late.java" => text.replace("wrong", "right"),
            _ => text.clone(),
        };
    }
    b.push(("Extra.java", "package shop;\npublic class Extra {}\n".to_string()));
    b
}

/// Compiles `sources` (package `shop`) and packs them, with a resource, into `<dir>/<tag>.jar`.
fn jar(jdk: &Jdk, dir: &Path, tag: &str, sources: &[(&str, String)]) -> PathBuf {
    jar_for(jdk, dir, tag, sources, &[])
}

/// [`jar`] with extra javac options (`--release 11`).
fn jar_for(jdk: &Jdk, dir: &Path, tag: &str, sources: &[(&str, String)], javac: &[&str]) -> PathBuf {
    let src = dir.join(format!("{tag}-src"));
    let classes = dir.join(format!("{tag}-classes"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&classes).unwrap();
    let files: Vec<PathBuf> = sources
        .iter()
        .map(|(name, text)| {
            let f = src.join(name);
            std::fs::write(&f, text).unwrap();
            f
        })
        .collect();
    let out =
        Command::new(jdk.tool("javac")).args(javac).arg("-g").arg("-d").arg(&classes).args(&files).output().unwrap();
    assert!(out.status.success(), "javac: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(classes.join("app.properties"), format!("build={tag}\n")).unwrap();
    let jar = dir.join(format!("{tag}.jar"));
    let out = Command::new(jdk.tool("jar")).arg("cf").arg(&jar).arg("-C").arg(&classes).arg(".").output().unwrap();
    assert!(out.status.success(), "jar: {}", String::from_utf8_lossy(&out.stderr));
    jar
}

fn start(jdk: &Jdk, jar: &Path, state: &Path) -> Service {
    start_on(jdk, jar, state)
}

/// [`start`] on any Java runtime.
fn start_on(jdk: &Jdk, jar: &Path, state: &Path) -> Service {
    let mut c = Command::new(jdk.java());
    c.arg(agentpath(&format!("state={}", state.display()))).arg("-cp").arg(jar).arg("shop.Main");
    Service::start(c)
}

fn repairctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_repairctl")).args(args).output().expect("repairctl runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn deploy(pid: u32, build: &Path, extra: &[&str]) -> serde_json::Value {
    let pid = pid.to_string();
    let mut args = vec!["deploy", build.to_str().unwrap(), "--pid", &pid, "-o", "json"];
    args.extend_from_slice(extra);
    json(&args)
}

fn states(plan: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = plan["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["state"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn field(state: &str, name: &str) -> u64 {
    let v = state.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).unwrap();
    v.parse().unwrap()
}

fn patches(pid: u32) -> serde_json::Value {
    json(&["patches", "--pid", &pid.to_string(), "-o", "json"])
}

const BUGGY: &str = "total=5 tax=0";
const FIXED: &str = "total=6 tax=7";

#[test]
fn a_fixed_build_deploys_live_under_load_and_rolls_back_as_one() {
    let jdk = default_jdk();
    let dir = TempDir::new("deploy-live");
    let old = jar(&jdk, &dir.0, "v1", &first_build());
    let new = jar(&jdk, &dir.0, "v2", &fixed_build());
    let mut svc = start(&jdk, &old, &dir.0.join("state"));
    let before = svc.state();
    assert!(before.contains(BUGGY), "{before}");

    let plan = deploy(svc.pid, &new, &["--dry-run"]);
    let expected: Vec<(String, String)> = [
        ("shop.Cart", "changed"),
        ("shop.Counter", "unchanged"),
        ("shop.Extra", "added"),
        ("shop.Late", "pending"),
        ("shop.Main", "unchanged"),
        ("shop.Tax", "changed"),
        ("shop.Util", "unchanged"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(states(&plan), expected, "{plan}");
    assert_eq!(plan["applied"], false);
    assert!(plan["resources"].as_array().unwrap().iter().any(|r| r == "app.properties"), "{plan}");
    let added = plan["classes"].as_array().unwrap().iter().find(|c| c["name"] == "shop.Extra").unwrap();
    assert!(added["reasons"][0].as_str().unwrap().contains("not in the running build"), "{added}");
    assert!(svc.state().contains(BUGGY), "a dry run changes nothing");
    assert_eq!(patches(svc.pid), serde_json::json!([]));

    let before = svc.state();
    let done = deploy(svc.pid, &new, &[]);
    assert_eq!(done["applied"], true, "{done}");
    assert_eq!(done["id"], "deploy-1");
    let after = svc.state();
    assert!(after.contains(FIXED), "{after}");
    // State is kept: the redefined class's static counter goes on from where it was (reset, it
    // would count only the calls since the deploy, far fewer than the load thread made before).
    assert!(field(&after, "calls") > field(&before, "calls"), "{before} -> {after}");
    assert!(after.contains("util=util limit=10"), "{after}");
    // The class not loaded at deploy time comes up fixed.
    assert_eq!(svc.send("late"), "LATE right");
    let listed = patches(svc.pid);
    assert_eq!(listed.as_array().unwrap().len(), 1, "one patch for the deployment: {listed}");
    let mut classes: Vec<&str> = listed[0]["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    classes.sort();
    assert_eq!(classes, ["shop.Cart", "shop.Late", "shop.Tax"]);

    // Deploying the same build again is refused by id, and changes nothing.
    let (ok, text) = repairctl(&["deploy", new.to_str().unwrap(), "--pid", &svc.pid.to_string(), "--id", "deploy-1"]);
    assert!(!ok && text.contains("deploy-1 is already applied"), "{text}");

    let gone = json(&["rollback", "deploy-1", "--pid", &svc.pid.to_string(), "-o", "json"]);
    assert_eq!(gone.as_array().unwrap().len(), 1, "{gone}");
    let rolled = svc.state();
    assert!(rolled.contains(BUGGY), "{rolled}");
    assert!(field(&rolled, "calls") > field(&after, "calls"));
    assert_eq!(svc.send("late"), "LATE wrong", "the late class rolls back too");
    assert_eq!(patches(svc.pid), serde_json::json!([]));

    let history = json(&["history", "--pid", &svc.pid.to_string(), "-o", "json"]);
    let records = history["records"].as_array().unwrap();
    let applied = records.iter().find(|r| r["event"] == "applied" && r["patch_id"] == "deploy-1").unwrap();
    assert_eq!(applied["classes"].as_array().unwrap().len(), 3, "{applied}");
    assert_eq!(applied["hashes_before"].as_array().unwrap().len(), 3, "every class's hashes: {applied}");
    assert!(records.iter().any(|r| r["event"] == "rolled_back" && r["patch_id"] == "deploy-1"), "{history}");
    svc.finish();
}

#[test]
fn a_durable_deployment_survives_kill_9_and_is_dropped_once_the_jvm_runs_the_new_build() {
    let jdk = default_jdk();
    let dir = TempDir::new("deploy-durable");
    let old = jar(&jdk, &dir.0, "v1", &first_build());
    let new = jar(&jdk, &dir.0, "v2", &fixed_build());
    let state = dir.0.join("state");
    let mut svc = start(&jdk, &old, &state);
    assert!(svc.state().contains(BUGGY));
    let done = deploy(svc.pid, &new, &["--durable", "--id", "hotfix-7"]);
    assert_eq!(done["applied"], true, "{done}");
    assert!(svc.state().contains(FIXED));
    svc.kill();

    // The old build again, with the state dir: the deployment is back before any command.
    let mut svc = start(&jdk, &old, &state);
    let restored = svc.state();
    assert!(restored.contains(FIXED), "{restored}");
    assert_eq!(svc.send("late"), "LATE right");
    assert_eq!(patches(svc.pid)[0]["id"], "hotfix-7");
    svc.kill();

    // A third build, whose Cart is neither: Cart loads as it is; the deployment's other classes
    // are restored, and it stays durable.
    let third =
        jar(&jdk, &dir.0, "v3", &edited(first_build(), "Cart.java", &|t| t.replace("int i = 1;", "int i = 2;")));
    let mut svc = start(&jdk, &third, &state);
    let s = svc.state();
    assert!(s.contains("total=3 tax=7"), "{s}");
    let events = json(&["events", "--pid", &svc.pid.to_string(), "-o", "json"]);
    assert!(
        events.as_array().unwrap().iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("shop.Cart") && r.contains("not the build this redefinition was made over"))),
        "{events}"
    );
    assert_eq!(patches(svc.pid)[0]["id"], "hotfix-7");
    svc.kill();
    let mut svc = start(&jdk, &old, &state);
    assert!(svc.state().contains(FIXED), "still durable for the old build");
    svc.kill();

    // The new build: nothing to restore, and the journal drops the deployment.
    let mut svc = start(&jdk, &new, &state);
    assert!(svc.state().contains(FIXED));
    assert_eq!(patches(svc.pid), serde_json::json!([]), "no longer needed");
    let history = json(&["history", "--pid", &svc.pid.to_string(), "-o", "json"]);
    let dropped = history["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event"] == "rolled_back" && r["patch_id"] == "hotfix-7")
        .unwrap_or_else(|| panic!("{history}"))
        .clone();
    assert!(dropped["reason"].as_str().unwrap().contains("no longer needed"), "{dropped}");
    svc.kill();

    // And the next start with the old build finds nothing durable.
    let mut svc = start(&jdk, &old, &state);
    assert!(svc.state().contains(BUGGY));
    svc.finish();
}

/// `build` with `file`'s source edited.
fn edited(
    mut build: Vec<(&'static str, String)>,
    file: &str,
    edit: &dyn Fn(&str) -> String,
) -> Vec<(&'static str, String)> {
    for (name, text) in &mut build {
        if *name == file {
            *text = edit(text);
        }
    }
    build
}

#[test]
fn a_redefine_patch_replaces_one_class_composes_with_a_guard_and_is_durable() {
    let jdk = default_jdk();
    let dir = TempDir::new("deploy-redefine");
    let old = jar(&jdk, &dir.0, "v1", &first_build());
    // A Cart that sums right but then divides by zero for three items: only a guard saves it.
    let boom = edited(first_build(), "Cart.java", &|t| {
        t.replace("int i = 1;", "int i = 0;").replace("return s; }", "return s / (xs.length - 3); }")
    });
    jar(&jdk, &dir.0, "boom", &boom);
    let specs = dir.0.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::copy(dir.0.join("boom-classes/shop/Cart.class"), specs.join("Cart.class")).unwrap();
    let guard = specs.join("guard.yaml");
    std::fs::write(
        &guard,
        "id: cart-guard\ntarget: { class: shop.Cart, method: total }\naction:\n  guard: { catch: [java.lang.ArithmeticException], fallback: { value: 42 } }\ndurable: true\n",
    )
    .unwrap();
    let redefine = specs.join("redefine.yaml");
    std::fs::write(
        &redefine,
        "id: cart-build\ntarget: { class: shop.Cart }\naction:\n  redefine: { class_file: Cart.class }\ndurable: true\n",
    )
    .unwrap();
    let state = dir.0.join("state");
    let mut svc = start(&jdk, &old, &state);
    let pid = svc.pid.to_string();
    assert!(svc.state().contains(BUGGY));
    for spec in [&guard, &redefine] {
        let (ok, text) = repairctl(&["apply", spec.to_str().unwrap(), "--pid", &pid]);
        assert!(ok, "{text}");
    }
    // Applied after the guard, the redefinition is still the base the guard wraps.
    let s = svc.state();
    assert!(s.contains("total=42"), "{s}");
    let listed = patches(svc.pid);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[1]["action"], "redefine from Cart.class");
    svc.kill();

    let mut svc = start(&jdk, &old, &state);
    let pid = svc.pid.to_string();
    let s = svc.state();
    assert!(s.contains("total=42"), "both durable, composed again at start-up: {s}");
    let (ok, text) = repairctl(&["rollback", "cart-build", "--pid", &pid]);
    assert!(ok, "{text}");
    let s = svc.state();
    assert!(s.contains(BUGGY), "the first build's Cart, still guarded: {s}");
    assert_eq!(patches(svc.pid)[0]["id"], "cart-guard");
    // A class file of another class is refused before anything changes.
    std::fs::copy(dir.0.join("v1-classes/shop/Util.class"), specs.join("Cart.class")).unwrap();
    let (ok, text) = repairctl(&["apply", redefine.to_str().unwrap(), "--pid", &pid]);
    assert!(!ok && text.contains("the new bytes define shop.Util"), "{text}");
    assert_eq!(patches(svc.pid).as_array().unwrap().len(), 1);
    svc.finish();
}

#[test]
fn builds_the_jvm_cannot_take_are_refused_by_class_member_and_reason_changing_nothing() {
    let jdk = default_jdk();
    let dir = TempDir::new("deploy-refused");
    let old = jar(&jdk, &dir.0, "v1", &first_build());
    let variant = |tag: &str, file: &str, edit: &dyn Fn(&str) -> String| {
        jar(&jdk, &dir.0, tag, &edited(fixed_build(), file, edit))
    };
    let added = variant("added", "Cart.java", &|t| {
        t.replace("public class Cart {", "public class Cart {\n    public static int extra() { return 1; }")
    });
    let field = variant("field", "Counter.java", &|t| t.replace("static int limit = 10;", "static long limit = 10;"));
    // The same Tax with its two methods in the other order: javac numbers the lambdas anew.
    let lambdas = variant("lambdas", "Tax.java", &|t| {
        let rate = t.lines().find(|l| l.contains("int rate(")).unwrap();
        let round = t.lines().find(|l| l.contains("int round(")).unwrap();
        t.replace(rate, "@@RATE@@").replace(round, rate).replace("@@RATE@@", round)
    });
    let uses_added = variant("uses-added", "Cart.java", &|t| t.replace("calls++;", "calls++; new Extra();"));
    let not_a_jar = dir.0.join("notes.jar");
    std::fs::write(&not_a_jar, "these are release notes, not a jar\n").unwrap();
    // A directory build whose Cart.class holds another class.
    let misnamed = dir.0.join("misnamed");
    std::fs::create_dir_all(misnamed.join("shop")).unwrap();
    std::fs::copy(dir.0.join("v1-classes/shop/Util.class"), misnamed.join("shop/Cart.class")).unwrap();

    let mut svc = start(&jdk, &old, &dir.0.join("state"));
    assert!(svc.state().contains(BUGGY));
    let pid = svc.pid.to_string();
    let cases: [(&Path, &[&str]); 6] = [
        (&added, &["shop.Cart", "method shop.Cart.extra()I", "added"]),
        (&uses_added, &["shop.Cart", "names shop.Extra, which the new build adds", "NoClassDefFoundError"]),
        (&field, &["shop.Counter", "field shop.Counter.limit", "int", "long"]),
        (&lambdas, &["shop.Tax", "lambda$rate$0", "renumber"]),
        (&not_a_jar, &["notes.jar", "not a jar"]),
        (&misnamed, &["shop/Cart.class defines class shop.Util"]),
    ];
    for (build, needles) in cases {
        let (ok, text) = repairctl(&["deploy", build.to_str().unwrap(), "--pid", &pid]);
        assert!(!ok, "{}: refused\n{text}", build.display());
        for n in needles {
            assert!(text.contains(n), "{}: the error names {n:?}:\n{text}", build.display());
        }
        assert!(text.lines().filter(|l| l.starts_with("repairctl: error")).count() == 1, "one error:\n{text}");
        assert_eq!(patches(svc.pid), serde_json::json!([]), "{}: nothing applied", build.display());
        assert!(svc.state().contains(BUGGY), "{}: nothing changed", build.display());
    }
    // --partial takes what fits and says what it left.
    let partial = deploy(svc.pid, &added, &["--partial"]);
    assert_eq!(partial["applied"], true, "{partial}");
    let s = svc.state();
    assert!(s.contains("total=5 tax=7"), "Tax deployed, Cart refused: {s}");
    svc.finish();
}

#[test]
fn a_deploy_works_after_attach() {
    let jdk = default_jdk();
    let dir = TempDir::new("deploy-attach");
    let old = jar(&jdk, &dir.0, "v1", &first_build());
    let new = jar(&jdk, &dir.0, "v2", &fixed_build());
    let mut c = Command::new(jdk.java());
    c.env("XDG_STATE_HOME", dir.0.join("state")).arg("-cp").arg(&old).arg("shop.Main");
    let mut svc = Service::start(c);
    assert!(svc.state().contains(BUGGY));
    let so = agent_support::agent_so();
    let (ok, text) = repairctl(&["attach", &svc.pid.to_string(), "--agent", so.to_str().unwrap()]);
    assert!(ok, "{text}");
    let done = deploy(svc.pid, &new, &[]);
    assert_eq!(done["applied"], true, "{done}");
    assert!(svc.state().contains(FIXED));
    assert_eq!(svc.send("late"), "LATE right");
    svc.finish();
}

#[test]
fn a_deploy_and_its_rollback_work_on_jdk_11_21_and_25() {
    let jdk = default_jdk();
    let dir = TempDir::new("deploy-jdks");
    let old = jar_for(&jdk, &dir.0, "v1", &first_build(), &["--release", "11"]);
    let new = jar_for(&jdk, &dir.0, "v2", &fixed_build(), &["--release", "11"]);
    for runtime in agent_support::runtimes() {
        eprintln!("deploy on {}", runtime.name);
        let mut svc = start_on(&runtime, &old, &dir.0.join(format!("state-{}", runtime.name)));
        assert!(svc.state().contains(BUGGY), "{}", runtime.name);
        let done = deploy(svc.pid, &new, &[]);
        assert_eq!(done["applied"], true, "{}: {done}", runtime.name);
        assert_eq!(done["classes"].as_array().unwrap().iter().filter(|c| c["state"] == "unchanged").count(), 3);
        assert!(svc.state().contains(FIXED), "{}", runtime.name);
        assert_eq!(svc.send("late"), "LATE right", "{}", runtime.name);
        json(&["rollback", "deploy-1", "--pid", &svc.pid.to_string(), "-o", "json"]);
        assert!(svc.state().contains(BUGGY), "{}", runtime.name);
        assert_eq!(svc.send("late"), "LATE wrong", "{}", runtime.name);
        svc.finish();
    }
}

/// The JVM itself refuses one class of the batch (its code does not verify): none of the build's
/// classes is redefined, not even those the JVM would have taken.
#[test]
fn a_class_the_jvm_rejects_takes_the_whole_deployment_with_it() {
    let jdk = default_jdk();
    let dir = TempDir::new("deploy-verify");
    let old = jar(&jdk, &dir.0, "v1", &first_build());
    jar(&jdk, &dir.0, "bad", &fixed_build());
    // Cart.total's `iadd` becomes `ladd`: same members, code the verifier rejects.
    let cart = dir.0.join("bad-classes/shop/Cart.class");
    let mut cf = repair_bytecode::ClassFile::parse(&std::fs::read(&cart).unwrap()).unwrap();
    let total = cf.methods.iter().position(|m| cf.pool.is_utf8(m.name, "total")).unwrap();
    let code = cf.methods[total].attributes.iter().position(|a| cf.pool.is_utf8(a.name, "Code")).unwrap();
    let data = &mut cf.methods[total].attributes[code].data;
    let len = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
    let iadd = data[8..8 + len].iter().position(|&op| op == 0x60).expect("an iadd") + 8;
    data[iadd] = 0x61;
    std::fs::write(&cart, cf.to_bytes().unwrap()).unwrap();
    let bad = dir.0.join("bad.jar");
    std::fs::remove_file(&bad).unwrap();
    let out = Command::new(jdk.tool("jar"))
        .arg("cf")
        .arg(&bad)
        .arg("-C")
        .arg(dir.0.join("bad-classes"))
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success());

    let mut svc = start(&jdk, &old, &dir.0.join("state"));
    assert!(svc.state().contains(BUGGY));
    let (ok, text) = repairctl(&["deploy", bad.to_str().unwrap(), "--pid", &svc.pid.to_string()]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("JVMTI_ERROR_FAILS_VERIFICATION") && text.contains("previous version stays active"),
        "{text}"
    );
    assert!(svc.state().contains(BUGGY), "Tax, which the JVM would take, is not redefined either");
    assert_eq!(patches(svc.pid), serde_json::json!([]));
    assert_eq!(svc.send("late"), "LATE wrong", "nor waits for its load");
    svc.finish();
}
