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
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        let mut e = Etcd { data: dir.join("etcd"), client: free_port(), peer: free_port(), child: None };
        e.restart();
        e
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    fn restart(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::File::create(self.data.with_extension("log")).unwrap();
        let child = Command::new(ETCD)
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

fn shop_jvm(classes: &Path, sockets: &Path, state: &Path) -> Service {
    let mut c = Command::new(default_jdk().java());
    c.env("TMPDIR", sockets)
        .arg(agentpath(&format!("service=shop,state={}", state.display())))
        .arg("-cp")
        .arg(classes)
        .arg("Shop");
    Service::start(c)
}

fn repaird(etcd: &str, host: &str, sockets: &Path, log: &Path) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_repaird"))
        .args(["--etcd", etcd, "--host", host, "--lease-ttl", "3s", "--agents-dir"])
        .arg(sockets)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("repaird starts");
    Killed(child)
}

fn status(etcd: &str) -> Value {
    repairctl_json(&["fleet", "status", "--service", "shop", "--etcd", etcd, "-o", "json"])
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
fn wait_for(etcd: &str, what: &str, limit: Duration, logs: &[&Path], mut done: impl FnMut(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let s = status(etcd);
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
    let (ok, out, err) = repairctl(&[
        "fleet",
        "apply",
        file.to_str().unwrap(),
        "--service",
        "shop",
        "--etcd",
        etcd,
        "--canary",
        "1",
        "--hold",
        hold,
    ]);
    assert!(ok, "fleet apply: {err}");
    out.trim().to_string()
}

/// Everything of one fleet: etcd, three JVMs (two on host a, one on b), two daemons.
struct Fleet {
    dir: TempDir,
    etcd: Etcd,
    jvms: Vec<Service>,
    daemons: Vec<Killed>,
}

impl Fleet {
    fn start(tag: &str) -> Option<Fleet> {
        if !Path::new(ETCD).exists() {
            eprintln!("skipping: {ETCD} is not installed (scripts/setup.sh installs etcd-server)");
            return None;
        }
        let dir = TempDir::new(tag);
        let etcd = Etcd::start(&dir.0);
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
            .map(|h| repaird(&url, h, &dir.0.join(format!("host-{h}")), &dir.0.join(format!("repaird-{h}.log"))))
            .collect();
        let f = Fleet { dir, etcd, jvms, daemons };
        f.wait_for("three instances reported", Duration::from_secs(30), |s| instances(s).len() == 3);
        Some(f)
    }

    fn wait_for(&self, what: &str, limit: Duration, done: impl FnMut(&Value) -> bool) -> Value {
        let logs = [self.dir.0.join("repaird-a.log"), self.dir.0.join("repaird-b.log"), self.dir.0.join("etcd.log")];
        let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
        wait_for(&self.etcd.url(), what, limit, &logs, done)
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
