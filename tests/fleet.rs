//! The fleet end to end: a real etcd on loopback, three JVMs of service `shop` with the real
//! librepair.so, two `repaird` (hosts `a` and `b`, each taking the JVMs whose agent sockets are
//! in its own directory), and `repairctl fleet` driving rollouts.

mod agent_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_support::{agentpath, compile, default_jdk, repairctl, repairctl_json, Service, TempDir};
use serde_json::Value;

const ETCD: &str = "/usr/bin/etcd";

/// A service whose `name` throws for odd numbers and whose caller `len` catches that: a worker
/// calls `len` every 20 ms. A guard on `name` whose fallback is a string stops the faults; one
/// whose fallback is null makes `len` throw (a NullPointerException, new faults at `Shop`).
const SHOP: &str = r#"
import java.io.*;
public class Shop {
    static String name(int i) {
        if (i % 2 == 1) throw new IllegalArgumentException("odd " + i);
        return "item" + i;
    }
    static int len(int i) {
        try { return name(i).length(); } catch (IllegalArgumentException e) { return -1; }
    }
    public static void main(String[] args) throws Exception {
        Thread worker = new Thread(() -> {
            for (int i = 0; ; i++) {
                try { len(i); } catch (RuntimeException e) { }
                try { Thread.sleep(20); } catch (InterruptedException e) { return; }
            }
        });
        worker.setDaemon(true);
        worker.start();
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String answer;
            try { answer = "STATE " + len(1); } catch (RuntimeException e) { answer = "STATE " + e; }
            System.out.println(answer);
        }
    }
}
"#;

/// Shop as fixed in its next build: `name` no longer throws, so `len(1)` is 6 instead of -1.
fn fixed_shop() -> String {
    SHOP.replace("throw new IllegalArgumentException(\"odd \" + i);", "return \"fixed\" + i;")
}

/// A policy whose rule never fires here (Shop throws no UnsupportedOperationException).
const POLICY: &str = "rules:\n  - name: shop-unsupported\n    when: { exception: java.lang.UnsupportedOperationException, count: 3, within: 10s }\n    then:\n      - guard: { fallback: default }\n";

const GUARD: &str = "id: shop-guard\ntarget: { class: Shop, method: \"name(I)Ljava/lang/String;\" }\naction:\n  guard: { catch: [java.lang.IllegalArgumentException], fallback: { value: \"none\" } }\n";
const BAD: &str = "id: shop-bad\ntarget: { class: Shop, method: \"name(I)Ljava/lang/String;\" }\naction:\n  guard: { catch: [java.lang.IllegalArgumentException], fallback: null }\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// etcd on loopback with its own data dir; stoppable and startable again on the same ports.
struct Etcd {
    data: PathBuf,
    client: u16,
    peer: u16,
    child: Option<Killed>,
    /// Serve clients over TLS with these (and ask each client for a certificate of its CA).
    tls: Option<Pki>,
}

impl Etcd {
    fn start(dir: &Path, tls: Option<Pki>) -> Etcd {
        let mut e = Etcd { data: dir.join("etcd"), client: free_port(), peer: free_port(), child: None, tls };
        e.restart();
        e
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client)
    }

    fn restart(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::File::create(self.data.with_extension("log")).unwrap();
        let mut command = Command::new(ETCD);
        if let Some(pki) = &self.tls {
            command
                .arg("--cert-file")
                .arg(pki.file("server.pem"))
                .arg("--key-file")
                .arg(pki.file("server.key"))
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(pki.file("ca.pem"));
        }
        let child = command
            .args(["--name", "fleet-test", "--data-dir"])
            .arg(&self.data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("fleet-test={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        self.child = Some(Killed(child));
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.client)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "etcd did not listen on {client}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        self.child = None;
    }
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files.
struct Pki(PathBuf);

impl Pki {
    fn new(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        for (who, names) in [("server", vec!["127.0.0.1", "localhost"]), ("client", vec!["repaird"])] {
            let key = KeyPair::generate().unwrap();
            let names: Vec<String> = names.into_iter().map(str::to_string).collect();
            let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.join(format!("{who}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{who}.key")), key.serialize_pem()).unwrap();
        }
        Pki(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `--etcd-ca --etcd-cert --etcd-key` for repaird and `repairctl fleet`.
    fn flags(&self) -> Vec<String> {
        ["--etcd-ca", "ca.pem", "--etcd-cert", "client.pem", "--etcd-key", "client.key"]
            .chunks(2)
            .flat_map(|f| [f[0].to_string(), self.file(f[1]).display().to_string()])
            .collect()
    }
}

fn shop_jvm(classes: &Path, sockets: &Path, state: &Path) -> Service {
    let mut c = Command::new(default_jdk().java());
    c.env("TMPDIR", sockets)
        .arg(agentpath(&format!("service=shop,state={}", state.display())))
        .arg("-cp")
        .arg(classes)
        .arg("Shop");
    Service::start(c)
}

fn repaird(etcd: &str, tls: &[String], host: &str, sockets: &Path, log: &Path) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_repaird"))
        .args(["--etcd", etcd, "--host", host, "--lease-ttl", "3s"])
        .args(tls)
        .arg("--agents-dir")
        .arg(sockets)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("repaird starts");
    Killed(child)
}

fn status(etcd: &str, tls: &[String]) -> Value {
    let mut args = vec!["fleet", "status", "--service", "shop", "--etcd", etcd, "-o", "json"];
    args.extend(tls.iter().map(String::as_str));
    repairctl_json(&args)
}

fn phase(s: &Value) -> String {
    s["rollout"]["phase"].as_str().unwrap_or("").to_string()
}

fn running(s: &Value, patch: &str) -> Vec<String> {
    instances(s)
        .iter()
        .filter(|i| i["running"].as_array().unwrap().iter().any(|p| p == patch))
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn instances(s: &Value) -> Vec<Value> {
    s["instances"].as_array().cloned().unwrap_or_default()
}

/// Polls `fleet status` until `done` holds for it; panics with the last status and the logs.
fn wait_for(
    etcd: &str,
    tls: &[String],
    what: &str,
    limit: Duration,
    logs: &[&Path],
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let s = status(etcd, tls);
        if done(&s) {
            return s;
        }
        if start.elapsed() > limit {
            let logs: String = logs
                .iter()
                .map(|l| format!("--- {}\n{}", l.display(), std::fs::read_to_string(l).unwrap_or_default()))
                .collect();
            panic!("timed out waiting for {what}; last status:\n{s:#}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn patches(pid: u32) -> Vec<String> {
    let v = repairctl_json(&["patches", "--pid", &pid.to_string(), "-o", "json"]);
    v.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect()
}

fn history_patch_ids(pid: u32) -> Vec<String> {
    let v = repairctl_json(&["history", "--pid", &pid.to_string(), "-o", "json"]);
    v["records"].as_array().unwrap().iter().map(|r| r["patch_id"].as_str().unwrap().to_string()).collect()
}

fn apply(etcd: &str, file: &Path, hold: &str) -> String {
    rollout("apply", etcd, file, &["--hold", hold])
}

/// `repairctl fleet <command> FILE --service shop --etcd URL --canary 1 <more>`: the rollout id.
fn rollout(command: &str, etcd: &str, file: &Path, more: &[&str]) -> String {
    let mut args = vec!["fleet", command, file.to_str().unwrap(), "--service", "shop", "--etcd", etcd, "--canary", "1"];
    args.extend(more);
    let (ok, out, err) = repairctl(&args);
    assert!(ok, "fleet {command}: {err}");
    out.trim().to_string()
}

/// Everything of one fleet: etcd, three JVMs (two on host a, one on b), two daemons.
struct Fleet {
    dir: TempDir,
    etcd: Etcd,
    jvms: Vec<Service>,
    daemons: Vec<Killed>,
    /// The TLS flags of every etcd client (empty: plain http).
    tls: Vec<String>,
}

impl Fleet {
    fn start(tag: &str) -> Option<Fleet> {
        Fleet::start_with(tag, false)
    }

    /// With `tls`: etcd asks for client certificates, and every client gives one.
    fn start_with(tag: &str, tls: bool) -> Option<Fleet> {
        if !Path::new(ETCD).exists() {
            eprintln!("skipping: {ETCD} is not installed (scripts/setup.sh installs etcd-server)");
            return None;
        }
        let dir = TempDir::new(tag);
        let pki = tls.then(|| Pki::new(&dir.0));
        let tls = pki.as_ref().map(Pki::flags).unwrap_or_default();
        let etcd = Etcd::start(&dir.0, pki);
        let classes = dir.0.join("classes");
        std::fs::create_dir_all(&classes).unwrap();
        compile(&default_jdk(), &classes, &[("Shop.java", SHOP)]);
        let mut jvms = Vec::new();
        for (n, host) in ["a", "a", "b"].iter().enumerate() {
            let sockets = dir.0.join(format!("host-{host}"));
            std::fs::create_dir_all(&sockets).unwrap();
            jvms.push(shop_jvm(&classes, &sockets, &dir.0.join(format!("state-{n}"))));
        }
        let url = etcd.url();
        let daemons = ["a", "b"]
            .iter()
            .map(|h| {
                let log = dir.0.join(format!("repaird-{h}.log"));
                repaird(&url, &tls, h, &dir.0.join(format!("host-{h}")), &log)
            })
            .collect();
        let f = Fleet { dir, etcd, jvms, daemons, tls };
        f.wait_for("three instances reported", Duration::from_secs(30), |s| instances(s).len() == 3);
        Some(f)
    }

    fn wait_for(&self, what: &str, limit: Duration, done: impl FnMut(&Value) -> bool) -> Value {
        let logs = [self.dir.0.join("repaird-a.log"), self.dir.0.join("repaird-b.log"), self.dir.0.join("etcd.log")];
        let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
        wait_for(&self.etcd.url(), &self.tls, what, limit, &logs, done)
    }

    fn pid_of(&self, instance: &str) -> u32 {
        instance.rsplit('/').next().unwrap().parse().unwrap()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

#[test]
fn a_patch_rolls_out_canary_first_a_bad_one_stops_at_its_canary_and_a_rollback_clears_the_fleet() {
    let Some(f) = Fleet::start("fleet") else { return };
    let etcd = f.etcd.url();

    // 1. Canary first, then all three.
    let good = apply(&etcd, &f.write("guard.yaml", GUARD), "2s");
    let s = f.wait_for("the canary running shop-guard", Duration::from_secs(20), |s| {
        phase(s) == "canary" && !running(s, "shop-guard").is_empty()
    });
    let canaries = s["rollout"]["canaries"].as_array().unwrap().clone();
    assert_eq!(running(&s, "shop-guard"), [canaries[0].as_str().unwrap()], "only the canary runs it: {s:#}");
    assert_eq!(canaries.len(), 1, "{s:#}");
    let s = f.wait_for("rollout done", Duration::from_secs(30), |s| phase(s) == "done");
    assert_eq!(running(&s, "shop-guard").len(), 3, "{s:#}");
    assert!(instances(&s).iter().all(|i| i["matches"] == true && i["desired"] == good.as_str()), "{s:#}");
    for jvm in &f.jvms {
        assert!(patches(jvm.pid).contains(&"shop-guard".to_string()), "JVM {} lacks shop-guard", jvm.pid);
    }

    // 2. A bad patch fails on its canary and never reaches the others.
    let bad = apply(&etcd, &f.write("bad.yaml", BAD), "3s");
    let s = f.wait_for("the bad rollout failed", Duration::from_secs(30), |s| phase(s).starts_with("failed"));
    let canary = s["rollout"]["canaries"][0].as_str().unwrap().to_string();
    let reason = s["rollout"]["reason"].as_str().unwrap();
    assert!(reason.starts_with(&format!("{canary}: ")) && reason.contains("new faults"), "{s:#}");
    let s = f.wait_for("the canary rolled back", Duration::from_secs(20), |s| running(s, "shop-bad").is_empty());
    let all = instances(&s);
    let failed: Vec<&Value> = all.iter().filter(|i| i["verdict"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{s:#}");
    assert_eq!(failed[0]["id"], canary.as_str());
    let canary_pid = f.pid_of(&canary);
    assert!(!patches(canary_pid).contains(&"shop-bad".to_string()));
    assert!(history_patch_ids(canary_pid).contains(&"shop-bad".to_string()), "the canary did run it");
    for jvm in f.jvms.iter().filter(|j| j.pid != canary_pid) {
        assert!(!history_patch_ids(jvm.pid).contains(&"shop-bad".to_string()), "JVM {} ran the bad patch", jvm.pid);
    }

    // 3. Rollback: nothing of the fleet's runs anywhere; the history has both rollouts.
    let (ok, _, err) = repairctl(&["fleet", "rollback", "--service", "shop", "--etcd", &etcd]);
    assert!(ok, "{err}");
    let s = f.wait_for("nothing running", Duration::from_secs(20), |s| {
        instances(s).iter().all(|i| i["running"].as_array().unwrap().is_empty())
    });
    assert!(s["rollout"].is_null(), "{s:#}");
    for jvm in &f.jvms {
        let p = patches(jvm.pid);
        assert!(!p.contains(&"shop-guard".to_string()) && !p.contains(&"shop-bad".to_string()), "{p:?}");
    }
    let h = repairctl_json(&["fleet", "history", "--service", "shop", "--etcd", &etcd, "-o", "json"]);
    let ids: Vec<&str> = h.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&good.as_str()) && ids.contains(&bad.as_str()), "{h:#}");
    let phases: Vec<&str> = h.as_array().unwrap().iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert!(phases.iter().any(|p| p.starts_with("failed")), "{h:#}");
    assert!(h.as_array().unwrap().iter().any(|r| r["kind"] == "rollback"), "{h:#}");
}

#[test]
fn etcd_away_mid_rollout_a_killed_daemon_and_a_restarted_jvm_leave_each_jvm_running_what_it_should() {
    let Some(mut f) = Fleet::start("fleet-outage") else { return };
    let etcd = f.etcd.url();
    apply(&etcd, &f.write("guard.yaml", GUARD), "3s");
    let s = f.wait_for("the canary running shop-guard", Duration::from_secs(20), |s| {
        phase(s) == "canary" && !running(s, "shop-guard").is_empty()
    });
    let canary_pid = f.pid_of(&running(&s, "shop-guard")[0]);

    // etcd away past the hold: every JVM keeps what it runs, nothing more is rolled out.
    f.etcd.stop();
    std::thread::sleep(Duration::from_secs(5));
    for jvm in &f.jvms {
        let has = patches(jvm.pid).contains(&"shop-guard".to_string());
        assert_eq!(has, jvm.pid == canary_pid, "JVM {} while etcd was away", jvm.pid);
    }
    f.etcd.restart();
    let s = f.wait_for("rollout done after etcd came back", Duration::from_secs(40), |s| {
        phase(s) == "done" && running(s, "shop-guard").len() == 3
    });
    assert!(instances(&s).iter().all(|i| i["matches"] == true), "{s:#}");

    // Daemon b killed -9: its instance leaves the fleet when its lease expires (3 s); its JVM
    // keeps the patch.
    let b_pid = f.jvms[2].pid;
    f.daemons[1].0.kill().unwrap();
    let s = f.wait_for("b's instance gone", Duration::from_secs(15), |s| instances(s).len() == 2);
    assert!(instances(&s).iter().all(|i| i["host"] == "a"), "{s:#}");
    assert!(patches(b_pid).contains(&"shop-guard".to_string()));

    // A JVM restarted (same state dir): the durable patch is back from its journal before the
    // daemon sees it, and its instance matches again under its new pid.
    let old = f.jvms[0].pid;
    f.jvms[0].kill();
    let jvm = shop_jvm(&f.dir.0.join("classes"), &f.dir.0.join("host-a"), &f.dir.0.join("state-0"));
    assert!(patches(jvm.pid).contains(&"shop-guard".to_string()), "restored from the journal at start");
    let new_id = format!("a/{}", jvm.pid);
    let s = f.wait_for("the restarted JVM reported", Duration::from_secs(20), |s| {
        let all = instances(s);
        all.iter().any(|i| i["id"] == new_id.as_str() && i["matches"] == true)
            && !all.iter().any(|i| i["id"] == format!("a/{old}").as_str())
    });
    assert_eq!(running(&s, "shop-guard").len(), 2, "{s:#}");
    f.jvms.push(jvm);
}

#[test]
fn a_build_deploys_canary_first_to_every_jvm_and_a_rollback_brings_the_old_code_back() {
    let Some(mut f) = Fleet::start("fleet-deploy") else { return };
    let etcd = f.etcd.url();
    let fixed = f.dir.0.join("shop-fixed");
    std::fs::create_dir_all(&fixed).unwrap();
    compile(&default_jdk(), &fixed, &[("Shop.java", &fixed_shop())]);
    for jvm in &mut f.jvms {
        assert_eq!(jvm.state(), "STATE -1", "the old build");
    }

    let id = rollout("deploy", &etcd, &fixed, &["--hold", "2s"]);
    assert!(id.starts_with("deploy-shop-fixed-"), "{id}");
    let s = f.wait_for("the canary running the build", Duration::from_secs(20), |s| {
        phase(s) == "canary" && !running(s, "deploy-shop-fixed").is_empty()
    });
    let canary = s["rollout"]["canaries"][0].as_str().unwrap().to_string();
    assert_eq!(s["rollout"]["kind"], "deploy", "{s:#}");
    assert_eq!(running(&s, "deploy-shop-fixed"), std::slice::from_ref(&canary), "only the canary runs it: {s:#}");
    let canary_pid = f.pid_of(&canary);
    for jvm in &mut f.jvms {
        let expected = if jvm.pid == canary_pid { "STATE 6" } else { "STATE -1" };
        assert_eq!(jvm.state(), expected, "JVM {} while the canary holds", jvm.pid);
    }
    let s = f.wait_for("the deploy done", Duration::from_secs(30), |s| {
        phase(s) == "done" && running(s, "deploy-shop-fixed").len() == 3
    });
    assert!(instances(&s).iter().all(|i| i["matches"] == true && i["desired"] == id.as_str()), "{s:#}");
    for jvm in &mut f.jvms {
        assert_eq!(jvm.state(), "STATE 6", "JVM {} runs the fixed build", jvm.pid);
        assert!(patches(jvm.pid).contains(&"deploy-shop-fixed".to_string()));
    }

    let (ok, _, err) = repairctl(&["fleet", "rollback", "--service", "shop", "--etcd", &etcd]);
    assert!(ok, "{err}");
    f.wait_for("nothing running", Duration::from_secs(20), |s| {
        instances(s).iter().all(|i| i["running"].as_array().unwrap().is_empty())
    });
    for jvm in &mut f.jvms {
        assert_eq!(jvm.state(), "STATE -1", "JVM {} is back on the old build", jvm.pid);
        assert!(!patches(jvm.pid).contains(&"deploy-shop-fixed".to_string()));
    }
}

#[test]
fn a_build_too_big_for_etcd_is_refused_before_it_is_sent() {
    let dir = TempDir::new("fleet-big");
    let build = dir.0.join("big");
    std::fs::create_dir_all(build.join("a")).unwrap();
    // Random-looking bytes: base64 makes 800 KiB about 1.07 MB.
    let bytes: Vec<u8> = (0..800 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(build.join("a/Big.class"), bytes).unwrap();
    // No etcd listens there: the size is checked first.
    let (ok, _, err) =
        repairctl(&["fleet", "deploy", build.to_str().unwrap(), "--service", "shop", "--etcd", "http://127.0.0.1:1"]);
    assert!(!ok);
    assert!(err.contains("the build is 1092") && err.contains("1 MiB") && err.contains("1.5 MiB"), "{err}");
}

#[test]
fn a_policy_rolls_out_to_every_jvm_and_a_rollback_leaves_them_an_empty_policy() {
    let Some(f) = Fleet::start("fleet-policy") else { return };
    let etcd = f.etcd.url();
    // Shop throws (and catches) all the time, at one site: the canary is judged by faults at
    // sites that were not faulting before (what the policy's repairs would cause), so the
    // default `--max-faults 0` holds.
    let id = rollout("apply", &etcd, &f.write("shop-policy.yaml", POLICY), &["--hold", "1s"]);
    let s = f.wait_for("the policy everywhere", Duration::from_secs(30), |s| {
        phase(s) == "done" && running(s, "policy:shop-policy").len() == 3
    });
    assert_eq!(s["rollout"]["kind"], "policy", "{s:#}");
    assert!(instances(&s).iter().all(|i| i["matches"] == true && i["desired"] == id.as_str()), "{s:#}");
    let rules = |pid: u32| -> Vec<String> {
        let shown = repairctl_json(&["policy", "show", "--pid", &pid.to_string(), "-o", "json"]);
        shown["rules"]
            .as_array()
            .map_or_else(Vec::new, |r| r.iter().map(|r| r["name"].as_str().unwrap_or_default().to_string()).collect())
    };
    for jvm in &f.jvms {
        assert_eq!(rules(jvm.pid), ["shop-unsupported"], "JVM {}", jvm.pid);
    }

    let (ok, _, err) = repairctl(&["fleet", "rollback", "--service", "shop", "--etcd", &etcd]);
    assert!(ok, "{err}");
    f.wait_for("no policy running", Duration::from_secs(20), |s| {
        instances(s).iter().all(|i| i["running"].as_array().unwrap().is_empty())
    });
    for jvm in &f.jvms {
        assert!(rules(jvm.pid).is_empty(), "JVM {} keeps a rule", jvm.pid);
    }
}

#[test]
fn over_tls_with_client_certificates_a_rollout_completes_and_a_client_without_one_is_refused() {
    let Some(f) = Fleet::start_with("fleet-tls", true) else { return };
    let etcd = f.etcd.url();
    assert!(etcd.starts_with("https://"), "{etcd}");
    let guard = f.write("guard.yaml", GUARD);
    let tls: Vec<&str> = f.tls.iter().map(String::as_str).collect();
    let mut more = vec!["--hold", "1s"];
    more.extend(&tls);
    let id = rollout("apply", &etcd, &guard, &more);
    let s = f.wait_for("the rollout done over TLS", Duration::from_secs(30), |s| {
        phase(s) == "done" && running(s, "shop-guard").len() == 3
    });
    assert!(instances(&s).iter().all(|i| i["desired"] == id.as_str()), "{s:#}");

    // The CA but no client certificate: etcd refuses the handshake; one error, in bounded time.
    let ca = f.tls[1].clone();
    let start = Instant::now();
    let (ok, out, err) =
        repairctl(&["fleet", "status", "--service", "shop", "--etcd", &etcd, "--etcd-ca", &ca, "-o", "json"]);
    let took = start.elapsed();
    assert!(!ok, "status without a client certificate: {out}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&etcd) && err.contains("certificate"), "{err}");
}
