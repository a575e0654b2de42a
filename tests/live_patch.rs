//! Live repair over gRPC: a JVM whose worker threads call the target methods is patched with
//! `repairctl apply` (guard, swap, probe), keeps its state, and `repairctl rollback` restores the
//! original behaviour. The same after dynamic attach (JDK 17 and, when present, JDK 25). Bad input
//! gets one clear error and changes nothing in the JVM.

mod agent_support;

use std::path::Path;
use std::process::Command;

use agent_support::{agentpath, compile, jdks, repairctl, Jdk, Service, TempDir};

const SHOP: &str = r#"
import java.io.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
public class Shop {
    static final Map<String, Long> state = new ConcurrentHashMap<>();
    static final AtomicLong calls = new AtomicLong(), errors = new AtomicLong();
    static String tryPrice(String k) { try { return String.valueOf(Prices.price(k)); } catch (NullPointerException e) { return "NPE"; } }
    public static void main(String[] a) throws Exception {
        state.put("orders", 42L);
        for (int t = 0; t < 4; t++) {
            Thread w = new Thread(() -> {
                for (long i = 0; ; i++) {
                    try { Prices.price(i % 2 == 0 ? "apple" : "durian"); Calc.twice((int) i); calls.incrementAndGet(); }
                    catch (RuntimeException e) { errors.incrementAndGet(); }
                    try { Thread.sleep(1); } catch (InterruptedException e) { return; }
                }
            });
            w.setDaemon(true);
            w.start();
        }
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            long e1 = errors.get(), c1 = calls.get();
            Thread.sleep(150);
            System.out.println("STATE price=" + tryPrice("durian") + " label=" + Labels.label("x") + " twice=" + Calc.twice(21)
                + " erroring=" + (errors.get() > e1) + " serving=" + (calls.get() > c1) + " orders=" + state.get("orders")
                + " echo=" + String.valueOf((Object) line));
        }
    }
}
class Prices {
    static final Map<String, Long> prices = new HashMap<>(Map.of("apple", 3L));
    static long price(String k) { return prices.get(k).longValue(); }
}
class Labels { static String label(String s) { return s; } }
class Calc { static int twice(int x) { return 2 * x; } }
class Fallbacks {
    static long price(String k) { return -9L; }
    static int priceAsInt(String k) { return -9; }
    long priceOnInstance(String k) { return -9L; }
}
"#;

/// Fixed source for the swap: compiled apart, its `label` replaces the target's.
const FIXED: &str = r#"
class Labels {
    static String label(String s) { return "fixed:" + s.toUpperCase(); }
    static String lambda(String s) { return java.util.Optional.of(s).map(v -> v + "!").get(); }
}
"#;

/// The Shop JVM of these tests.
fn start_shop(jdk: &Jdk, dir: &Path, args: &[String]) -> Service {
    let mut command = Command::new(jdk.java());
    // The agent's default state dir: per test, so no test sees another's durable patches.
    command.env("XDG_STATE_HOME", dir.join("state")).args(args).arg("-cp").arg(dir).arg("Shop");
    Service::start(command)
}

use agent_support::repairctl_json as json;

fn write_spec(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const GUARD: &str = "id: price-npe\ntarget: { class: Prices, method: \"price(Ljava/lang/String;)J\" }\naction:\n  guard: { catch: [java.lang.NullPointerException], fallback: { value: -7 } }\n";
const SWAP: &str =
    "id: label-fix\ntarget: { class: Labels, method: label }\naction:\n  swap: { class_file: fixed/Labels.class }\n";
const PROBE: &str = "id: calc-probe\ntarget: { class: Calc, method: twice }\naction:\n  probe: { at: [entry, exit], capture: [time] }\n";

fn sources(jdk: &Jdk, tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    compile(jdk, &dir.0, &[("Shop.java", SHOP)]);
    let fixed = dir.0.join("fixed");
    std::fs::create_dir_all(&fixed).unwrap();
    compile(jdk, &fixed, &[("Labels.java", FIXED)]);
    dir
}

/// Guard, swap and probe applied while the workers run, then rolled back.
fn repair_and_roll_back(jvm: &mut Service, dir: &Path) {
    let pid = jvm.pid.to_string();
    let s = jvm.state();
    assert!(
        s.contains("price=NPE") && s.contains("label=x ") && s.contains("erroring=true") && s.contains("orders=42"),
        "{s}"
    );

    // What is loaded, by whom, and whether it may be patched.
    let classes = json(&["classes", "Lab*", "--pid", &pid, "-o", "json"]);
    assert_eq!(classes.as_array().map(Vec::len), Some(1), "{classes}");
    assert_eq!(
        (&classes[0]["name"], &classes[0]["loader"], &classes[0]["modifiable"]),
        (&"Labels".into(), &"jdk.internal.loader.ClassLoaders$AppClassLoader".into(), &true.into()),
        "{classes}"
    );
    let string = json(&["classes", "java.lang.String", "--pid", &pid, "-o", "json"]);
    assert_eq!(string[0]["loader"], "bootstrap", "{string}");
    let status = json(&["status", "--pid", &pid, "-o", "json"]);
    assert!(status["classes_loaded"].as_u64().unwrap() > 400, "{status}");

    let (guard, swap, probe) = (
        write_spec(dir, "guard.yaml", GUARD),
        write_spec(dir, "swap.yaml", SWAP),
        write_spec(dir, "probe.yaml", PROBE),
    );
    for spec in [&guard, &swap, &probe] {
        let (ok, out, err) = repairctl(&["apply", spec, "--pid", &pid]);
        assert!(ok, "apply {spec}: {err}");
        assert!(out.starts_with("applied "), "{out}");
    }
    let s = jvm.state();
    assert!(s.contains("price=-7") && s.contains("label=fixed:X") && s.contains("twice=42"), "repaired: {s}");
    assert!(s.contains("erroring=false") && s.contains("serving=true") && s.contains("orders=42"), "state kept: {s}");
    let (ok, out, _) = repairctl(&["patches", "--pid", &pid, "-o", "json"]);
    assert!(ok);
    let patches: serde_json::Value = serde_json::from_str(&out).unwrap();
    let guard_patch = patches.as_array().unwrap().iter().find(|p| p["id"] == "price-npe").expect("price-npe listed");
    assert!(guard_patch["fallbacks"].as_u64().unwrap() > 0, "fallbacks counted: {out}");
    // Who applied it: the login name, else (a service account, a container) the user id.
    let (ok, _, err) = repairctl(&["rollback", "price-npe", "--pid", &pid]);
    assert!(ok, "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_repairctl"))
        .args(["apply", &guard, "--pid", &pid, "-o", "json"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let uid = repair_model::endpoint::current_uid().expect("procfs");
    let (_, out, _) = repairctl(&["patches", "--pid", &pid, "-o", "json"]);
    let patches: serde_json::Value = serde_json::from_str(&out).unwrap();
    let again = patches.as_array().unwrap().iter().find(|p| p["id"] == "price-npe").expect("price-npe listed");
    // Without $USER and $LOGNAME the operator is the uid's name in /etc/passwd (else uid:N).
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid.to_string())
        .map_or_else(|| format!("uid:{uid}"), |f| f[0].to_string());
    assert_eq!(again["who"], format!("operator:{name}"), "{out}");

    let (ok, _, err) = repairctl(&["rollback", "price-npe", "--pid", &pid]);
    assert!(ok, "{err}");
    let s = jvm.state();
    assert!(
        s.contains("price=NPE") && s.contains("erroring=true") && s.contains("label=fixed:X"),
        "guard rolled back alone: {s}"
    );
    let (ok, out, err) = repairctl(&["rollback", "--all", "--pid", &pid]);
    assert!(ok, "{err}");
    assert!(out.contains("label-fix") && out.contains("calc-probe"), "{out}");
    let s = jvm.state();
    assert!(
        s.contains("price=NPE") && s.contains("label=x ") && s.contains("orders=42") && s.contains("serving=true"),
        "originals back: {s}"
    );
}

#[test]
fn guard_swap_and_probe_apply_live_and_roll_back() {
    let jdk = agent_support::default_jdk();
    let dir = sources(&jdk, "live");
    let mut jvm = start_shop(&jdk, &dir.0, &[agentpath("log=info")]);
    repair_and_roll_back(&mut jvm, &dir.0);
    let stderr = jvm.finish();
    // Patches get report ids 1, 2, 3 in apply order: the probe (3) reported to the runtime hooks
    // while it was in place, and the guard (1) counted its fallbacks.
    let report = |id: &str| {
        stderr
            .lines()
            .find(|l| l.contains(&format!("report {id} ")))
            .unwrap_or_else(|| panic!("no report {id}:\n{stderr}"))
    };
    assert!(!report("3").contains("enters=0") && !report("3").contains("exits=0"), "{}", report("3"));
    assert!(!report("1").contains("fallbacks=0"), "{}", report("1"));
}

#[test]
fn the_same_after_dynamic_attach() {
    for jdk in jdks() {
        let dir = sources(&jdk, "attach");
        let mut args = Vec::new();
        if jdk.name != "default JDK" {
            args.push("-XX:+EnableDynamicAgentLoading".to_string());
        }
        let mut jvm = start_shop(&jdk, &dir.0, &args);
        let pid = jvm.pid.to_string();
        let (ok, out, err) = repairctl(&["attach", &pid]);
        assert!(ok, "{}: attach: {err}", jdk.name);
        assert!(out.contains("agent loaded"), "{out}");
        let (ok, out, _) = repairctl(&["status", "--pid", &pid]);
        assert!(ok && out.contains("onattach") && out.contains("bytecode-probes"), "{out}");
        repair_and_roll_back(&mut jvm, &dir.0);
        // A second load is refused and the first agent keeps serving.
        let (ok, _, err) = repairctl(&["attach", &pid]);
        assert!(!ok && err.contains("refused to start"), "{err}");
        assert!(repairctl(&["status", "--pid", &pid]).0);
        jvm.finish();
    }
}

/// Each apply and rollback retransforms the class, and the hook adds the fault capture probes to
/// each new version. HotSpot's RedefineClasses keeps every constant of the old pool in the new one
/// (`VM_RedefineClasses::merge_constant_pools`): probes with fresh ids each time added a constant
/// per retransformation, and metaspace grew quadratically with the cycles (bench/metaspace.txt).
/// With the same ids for the same class, the merged pool stops growing after the first cycle.
#[test]
fn apply_rollback_cycles_do_not_grow_the_constant_pool() {
    let jdk = agent_support::default_jdk();
    let dir = sources(&jdk, "cp-cycles");
    let log = dir.0.join("cp.log");
    let xlog = format!("-Xlog:redefine+class+constantpool=info:file={}", log.display());
    let mut jvm = start_shop(&jdk, &dir.0, &[agentpath(""), xlog]);
    let pid = jvm.pid.to_string();
    let guard = write_spec(&dir.0, "guard.yaml", GUARD);
    for _ in 0..12 {
        let (ok, _, err) = repairctl(&["apply", &guard, "--pid", &pid]);
        assert!(ok, "{err}");
        let (ok, _, err) = repairctl(&["rollback", "price-npe", "--pid", &pid]);
        assert!(ok, "{err}");
    }
    assert!(jvm.state().contains("price=NPE"));
    jvm.finish();
    // "old_cp_len=N, scratch_cp_len=M" per redefinition (only Prices is redefined).
    let text = std::fs::read_to_string(&log).unwrap();
    let lens: Vec<u32> =
        text.lines().filter_map(|l| l.split("old_cp_len=").nth(1)?.split(',').next()?.parse().ok()).collect();
    // One merge per apply and per rollback, and one as the first apply takes the original bytes.
    assert!(lens.len() >= 24, "{text}");
    // The first apply adds the guard's constants; then nothing more (it grew by 2 a cycle).
    let settled = *lens[..4].iter().max().unwrap();
    assert!(lens.iter().all(|&n| n <= settled), "the pool grows with the cycles: {lens:?}");
}

#[test]
fn bad_input_gets_one_clear_error_and_changes_nothing() {
    let jdk = agent_support::default_jdk();
    let dir = sources(&jdk, "bad");
    let d = &dir.0;
    let mut jvm = start_shop(&jdk, d, &[agentpath("")]);
    let pid = jvm.pid.to_string();
    let guard = write_spec(d, "guard.yaml", GUARD);
    assert!(repairctl(&["apply", &guard, "--pid", &pid]).0);
    let before = jvm.state();

    let fail = |spec: &str, expect: &str| {
        let (ok, out, err) = repairctl(&["apply", spec, "--pid", &pid]);
        assert!(!ok, "{spec} was accepted: {out}");
        assert!(err.starts_with("repairctl: error: ") && err.trim_end().lines().count() == 1, "one line: {err}");
        assert!(err.contains(expect), "{spec}: {err} lacks {expect:?}");
    };
    fail(
        &write_spec(d, "c.yaml", &GUARD.replace("class: Prices", "class: NoSuchClass").replace("price-npe", "c")),
        "NoSuchClass",
    );
    fail(
        &write_spec(
            d,
            "m.yaml",
            &GUARD.replace("method: \"price(Ljava/lang/String;)J\"", "method: nosuch").replace("price-npe", "m"),
        ),
        "no method nosuch",
    );
    fail(&write_spec(d, "dup.yaml", GUARD), "already applied");
    // A swap whose body needs the lambda's synthetic method, which the target lacks.
    let lambda = write_spec(d, "l.yaml", &SWAP.replace("method: label", "method: lambda").replace("label-fix", "l"));
    fail(&lambda, "no method lambda");
    let lambda_body = FIXED.replace("return \"fixed:\" + s.toUpperCase();", "return lambda(s);");
    let fixed2 = d.join("fixed2");
    std::fs::create_dir_all(&fixed2).unwrap();
    compile(&jdk, &fixed2, &[("Labels.java", &lambda_body)]);
    fail(
        &write_spec(d, "l2.yaml", &SWAP.replace("fixed/", "fixed2/").replace("label-fix", "l2")),
        "redefinition cannot add a method",
    );
    // A file that is not a class.
    std::fs::write(d.join("fixed/NotAClass.class"), b"hello").unwrap();
    fail(
        &write_spec(
            d,
            "n.yaml",
            &SWAP.replace("fixed/Labels.class", "fixed/NotAClass.class").replace("label-fix", "n"),
        ),
        "not a class file",
    );
    // A patch class HotSpot's verifier rejects: `label` returning an int from a String method.
    let bytes = std::fs::read(d.join("fixed/Labels.class")).unwrap();
    let mut cf = repair_bytecode::ClassFile::parse(&bytes).unwrap();
    let i = cf.find_method("label", None).unwrap();
    let at = cf.attribute_position(&cf.methods[i].attributes, "Code").unwrap();
    let info = repair_bytecode::code::MethodInfo {
        class: "Labels",
        name: "label",
        descriptor: "(Ljava/lang/String;)Ljava/lang/String;",
        access: cf.methods[i].access,
    };
    let mut code = repair_bytecode::code::Code::decode(&cf.methods[i].attributes[at].data, &cf.pool, &info).unwrap();
    for insn in &mut code.insns {
        if *insn == repair_bytecode::code::Insn::Op(repair_bytecode::code::opcodes::ARETURN) {
            *insn = repair_bytecode::code::Insn::Op(repair_bytecode::code::opcodes::IRETURN);
        }
    }
    cf.methods[i].attributes[at].data = code.encode(&mut cf.pool, &info).unwrap();
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("Labels.class"), cf.to_bytes().unwrap()).unwrap();
    fail(
        &write_spec(d, "v.yaml", &SWAP.replace("fixed/", "bad/").replace("label-fix", "v")),
        "JVMTI_ERROR_FAILS_VERIFICATION",
    );

    let after = jvm.state();
    let strip = |s: &str| s.replace("erroring=false", "").replace("serving=true", "");
    assert_eq!(strip(&after), strip(&before), "the JVM is unchanged");
    let (_, out, _) = repairctl(&["patches", "--pid", &pid]);
    assert_eq!(out.lines().count(), 2, "only the guard is active:\n{out}");
    jvm.finish();
}

#[test]
fn a_killed_jvm_leaves_a_socket_that_is_reported_clearly() {
    let jdk = agent_support::default_jdk();
    let dir = sources(&jdk, "killed");
    let mut jvm = start_shop(&jdk, &dir.0, &[agentpath("")]);
    let pid = jvm.pid;
    assert!(repairctl(&["status", "--pid", &pid.to_string()]).0);
    jvm.kill();
    let socket = repair_model::endpoint::socket_path(pid);
    assert!(socket.exists(), "kill -9 leaves {} behind", socket.display());
    let (ok, _, err) = repairctl(&["status", "--pid", &pid.to_string()]);
    assert!(!ok);
    assert!(
        err.starts_with("repairctl: error: ") && (err.contains("stale socket") || err.contains("no process")),
        "{err}"
    );
    let _ = std::fs::remove_file(socket);
}

/// A durable patch outlives the build of the class it was made for: when the JVM starts with
/// the same state dir and the class loads in a form the patch no longer fits, the patch is
/// dropped (journaled and told as an event), the class loads as it is, and it is not tried again.
#[test]
fn a_durable_patch_that_no_longer_fits_its_class_is_dropped_at_load_and_journaled() {
    let jdk = agent_support::default_jdk();
    let dir = sources(&jdk, "durable-misfit");
    let mut jvm = start_shop(&jdk, &dir.0, &[agentpath("")]);
    let spec = write_spec(&dir.0, "durable.yaml", &format!("{GUARD}durable: true\n"));
    let (ok, _, err) = repairctl(&["apply", &spec, "--pid", &jvm.pid.to_string()]);
    assert!(ok, "{err}");
    assert!(jvm.state().contains("price=-7"));
    jvm.finish();

    // The next build: `price` now returns an int, so the guard's target no longer exists.
    let next = SHOP.replace(
        "static long price(String k) { return prices.get(k).longValue(); }",
        "static int price(String k) { return prices.get(k).intValue(); }",
    );
    assert_ne!(next, SHOP);
    compile(&jdk, &dir.0, &[("Shop.java", &next)]);
    let mut jvm = start_shop(&jdk, &dir.0, &[agentpath("")]);
    let pid = jvm.pid.to_string();
    let s = jvm.state();
    assert!(s.contains("price=NPE") && s.contains("serving=true"), "the class runs as built: {s}");
    assert_eq!(json(&["patches", "--pid", &pid, "-o", "json"]), serde_json::json!([]), "nothing is in effect");
    let events = json(&["events", "--pid", &pid, "-o", "json"]);
    let dropped = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "rolled-back" && e["patch"] == "price-npe")
        .unwrap_or_else(|| panic!("no rolled-back event: {events}"));
    assert!(dropped["reason"].as_str().unwrap().contains("does not fit Prices as it loads"), "{dropped}");
    let history = json(&["history", "--pid", &pid, "-o", "json"]);
    // Who applied it, as the socket vouched for the client (repairctl's uid and pid).
    let first = history["records"][0]["reason"].as_str().unwrap().to_string();
    let uid = repair_model::endpoint::current_uid().expect("procfs");
    assert!(first.starts_with("applied by operator:") && first.contains(&format!(" (uid {uid}, pid ")), "{first}");
    let last = history["records"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["event"], &last["patch_id"], &last["who"]),
        (&"rolled_back".into(), &"price-npe".into(), &"agent".into()),
        "{history}"
    );
    jvm.finish();

    // Dropped for good: the third start does not try it.
    let mut jvm = start_shop(&jdk, &dir.0, &[agentpath("")]);
    let events = json(&["events", "--pid", &jvm.pid.to_string(), "-o", "json"]);
    assert!(!events.as_array().unwrap().iter().any(|e| e["patch"] == "price-npe"), "{events}");
    assert!(jvm.state().contains("price=NPE"));
    jvm.finish();
}

#[test]
fn jdk_classes_need_allow_jdk_and_a_probe_there_never_recurses_into_the_agent() {
    let jdk = agent_support::default_jdk();
    let dir = sources(&jdk, "allow-jdk");
    let mut jvm = start_shop(&jdk, &dir.0, &[agentpath("log=info")]);
    let pid = jvm.pid.to_string();
    // The agent formats a captured value with Class.getName and toString: probing them used to
    // recurse (Hooks.exitValue -> getName -> Hooks.exitValue ...) and hang every caller.
    let spec = write_spec(
        &dir.0,
        "getname.yaml",
        "id: getname\ntarget: { class: java.lang.Class, method: \"getName()Ljava/lang/String;\" }\naction:\n  probe: { at: [entry, exit], capture: [args, return] }\n",
    );
    let (ok, _, err) = repairctl(&["apply", &spec, "--pid", &pid]);
    assert!(!ok && err.contains("JDK class") && err.contains("--allow-jdk"), "{err}");
    assert!(json(&["patches", "--pid", &pid, "-o", "json"]).as_array().unwrap().is_empty(), "nothing applied");
    let (ok, _, err) = repairctl(&["apply", &spec, "--pid", &pid, "--allow-jdk"]);
    assert!(ok, "{err}");
    // Values are captured (getName is called by the JVM's own code too) and nothing hangs.
    let to_string = write_spec(
        &dir.0,
        "tostring.yaml",
        "id: tostring\ntarget: { class: java.lang.String, method: \"toString()Ljava/lang/String;\" }\naction:\n  probe: { at: [entry, exit], capture: [return] }\n",
    );
    let (ok, _, err) = repairctl(&["apply", &to_string, "--pid", &pid, "--allow-jdk"]);
    assert!(ok, "{err}");
    for _ in 0..3 {
        let s = jvm.state();
        assert!(s.contains("serving=true") && s.contains("orders=42") && s.contains("echo=state"), "{s}");
    }
    let (ok, _, err) = repairctl(&["rollback", "getname", "--pid", &pid]);
    assert!(ok, "{err}");
    // Each String.toString the JVM makes is one exit, plus one for the agent formatting its value
    // (counted, not formatted again): some hundreds here. Recursing, each would be thousands,
    // until the stack overflows (359,340 measured without the guard).
    let stderr = jvm.finish();
    let line = stderr.lines().find(|l| l.contains("(patch tostring)")).unwrap_or_else(|| panic!("{stderr}"));
    let exits: u64 = line.split("exits=").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!((2..20_000).contains(&exits), "{line}");
}

#[test]
fn a_fallback_method_is_resolved_when_the_guard_is_applied() {
    let jdk = agent_support::default_jdk();
    let dir = sources(&jdk, "fallback-method");
    let mut jvm = start_shop(&jdk, &dir.0, &[agentpath("")]);
    let pid = jvm.pid.to_string();
    let guard = |name: &str, method: &str| {
        write_spec(
            &dir.0,
            &format!("{name}.yaml"),
            &format!(
                "id: {name}\ntarget: {{ class: Prices, method: \"price(Ljava/lang/String;)J\" }}\naction:\n  guard: {{ catch: [java.lang.NullPointerException], fallback: {{ method: {method} }} }}\n"
            ),
        )
    };
    for (name, method, needle) in [
        ("no-class", "NoSuchFallbacks.price", "NoSuchFallbacks"),
        ("no-method", "Fallbacks.nope", "no static method nope(Ljava/lang/String;)J"),
        ("wrong-type", "Fallbacks.priceAsInt", "no static method priceAsInt(Ljava/lang/String;)J"),
        ("not-static", "Fallbacks.priceOnInstance", "no static method priceOnInstance"),
    ] {
        let (ok, _, err) = repairctl(&["apply", &guard(name, method), "--pid", &pid]);
        assert!(!ok && err.contains(needle) && err.contains(&format!("patch {name}")), "{name}: {err}");
        assert!(
            json(&["patches", "--pid", &pid, "-o", "json"]).as_array().unwrap().is_empty(),
            "{name}: nothing applied"
        );
        assert!(jvm.state().contains("price=NPE"), "{name}: the JVM is unchanged");
    }
    // A catch type that does not load, or is not a Throwable, is refused the same way: the JVM
    // would throw NoClassDefFoundError from the handler on the application's thread.
    for (name, catch, needle) in
        [("no-such-catch", "ava.lang.Long", "cannot load it"), ("not-throwable", "java.lang.Long", "not a Throwable")]
    {
        let spec = write_spec(
            &dir.0,
            &format!("{name}.yaml"),
            &format!("id: {name}\ntarget: {{ class: Prices, method: \"price(Ljava/lang/String;)J\" }}\naction:\n  guard: {{ catch: [{catch}], fallback: {{ value: 1 }} }}\n"),
        );
        let (ok, _, err) = repairctl(&["apply", &spec, "--pid", &pid]);
        assert!(!ok && err.contains(needle) && err.contains(catch), "{name}: {err}");
        assert!(jvm.state().contains("price=NPE"), "{name}: the JVM is unchanged");
    }
    let (ok, _, err) = repairctl(&["apply", &guard("good", "Fallbacks.price"), "--pid", &pid]);
    assert!(ok, "{err}");
    let s = jvm.state();
    assert!(s.contains("price=-9") && s.contains("erroring=false"), "{s}");
    jvm.finish();
}
