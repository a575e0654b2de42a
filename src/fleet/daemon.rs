//! `repaird`'s reconcile loop: finds the local JVMs with the agent (every second, locally),
//! keeps a cache of each of their services' keys (one read, then a watch: no polling of etcd),
//! and moves each JVM toward its service's desired state, reporting it under a lease.
//!
//! etcd unreachable: every JVM keeps what it runs (nothing is rolled back for that reason), the
//! watch and the lease are retried with backoff, and on reconnect the service is read again
//! whole and reconciled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use etcd_client::Client as Etcd;
use tokio::sync::mpsc;

use super::rollout::{self, Hold, View};
use super::{store, Desired, Keys, Kind, Observed};
use crate::client::{connect, describe, Client, Credentials, Target};
use crate::proto;

/// `repaird`'s settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub etcd: Vec<String>,
    pub tls: store::TlsFiles,
    pub host: String,
    /// Only the JVMs whose agent socket is under this directory.
    pub agents_dir: Option<PathBuf>,
    /// Only these JVMs.
    pub pids: Option<Vec<u32>>,
    pub lease_ttl: Duration,
}

/// A service's keys (relative) with their values and mod_revisions.
type Cache = BTreeMap<String, (String, i64)>;

/// What the store's tasks tell the loop.
enum Message {
    /// A service's keys read whole (at start and after each reconnect).
    Snapshot(String, BTreeMap<String, (String, i64)>),
    /// Changes a watch reported.
    Changes(String, Vec<store::Change>),
    /// A lease to put observed state under (`None`: lost, until the next).
    Lease(Option<i64>),
}

/// A canary's hold in progress on one JVM.
struct HoldState {
    rollout: String,
    since: Instant,
    faults_before: u64,
    /// For a policy: the fault sites there were when it was applied (see [`Daemon::faults`]).
    sites_before: Option<HashSet<String>>,
}

/// One local JVM with the agent.
struct Instance {
    id: String,
    service: String,
    agent: Option<Client>,
    /// The JSON last put for it (only changes are put).
    reported: Option<String>,
    hold: Option<HoldState>,
    /// The rollout this JVM failed as a canary: never applied here again.
    failed: Option<String>,
}

struct Daemon {
    config: Config,
    etcd: Etcd,
    tx: mpsc::Sender<Message>,
    /// Per service: its keys, the cache (`None` until the first read), its watch task.
    services: HashMap<String, (Keys, Option<Cache>, tokio::task::JoinHandle<()>)>,
    instances: BTreeMap<u32, Instance>,
    lease: Option<i64>,
}

fn log(line: &str) {
    eprintln!("repaird: {line}");
}

pub async fn run(config: Config) -> Result<(), String> {
    let etcd = store::connect(&config.etcd, &config.tls).await?;
    let (tx, mut rx) = mpsc::channel(1024);
    tokio::spawn(lease_task(etcd.clone(), config.lease_ttl, tx.clone()));
    log(&format!("host {} on etcd {}", config.host, config.etcd.join(",")));
    let mut d = Daemon { config, etcd, tx, services: HashMap::new(), instances: BTreeMap::new(), lease: None };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                d.rescan().await;
                d.reconcile_all().await;
            }
            Some(first) = rx.recv() => {
                // Everything that came together is taken in before one reconcile.
                d.take(first);
                while let Ok(next) = rx.try_recv() {
                    d.take(next);
                }
                d.reconcile_all().await;
            }
        }
    }
}

/// Grants a lease and keeps it alive; when that fails, says so and tries again with backoff.
async fn lease_task(etcd: Etcd, ttl: Duration, tx: mpsc::Sender<Message>) {
    let mut backoff = Duration::from_millis(200);
    let mut down = false;
    loop {
        match store::grant_lease(&etcd, ttl).await {
            Ok(lease) => {
                if down {
                    log("etcd is back: a new lease");
                }
                down = false;
                backoff = Duration::from_millis(200);
                let _ = tx.send(Message::Lease(Some(lease))).await;
                let why = store::keep_alive(&etcd, lease, ttl).await;
                log(&format!("lease {lease:x} lost: {why}"));
                let _ = tx.send(Message::Lease(None)).await;
            }
            Err(e) => {
                if !down {
                    log(&format!("{e}; the JVMs keep what they run, retrying"));
                }
                down = true;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Reads a service whole, then watches it from there; reads again after every break.
async fn watch_task(etcd: Etcd, service: String, keys: Keys, tx: mpsc::Sender<Message>) {
    let mut backoff = Duration::from_millis(200);
    let mut down = false;
    loop {
        match store::read_service(&etcd, &keys).await {
            Ok((values, revision)) => {
                if down {
                    log(&format!("{service}: etcd is back: read again"));
                }
                down = false;
                backoff = Duration::from_millis(200);
                if tx.send(Message::Snapshot(service.clone(), values)).await.is_err() {
                    return;
                }
                match store::watch_service(&etcd, &keys, revision + 1).await {
                    Ok(mut stream) => loop {
                        match stream.message().await {
                            Ok(Some(r)) if r.canceled() => break,
                            Ok(Some(r)) => {
                                let changes = store::changes(&keys, &r);
                                if !changes.is_empty()
                                    && tx.send(Message::Changes(service.clone(), changes)).await.is_err()
                                {
                                    return;
                                }
                            }
                            Ok(None) | Err(_) => break,
                        }
                    },
                    Err(e) => log(&format!("{service}: {e}")),
                }
            }
            Err(e) => {
                if !down {
                    log(&format!("{service}: {e}; the JVMs keep what they run, retrying"));
                }
                down = true;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The sum of the fault counts at `classes` (the site's class, or a class on the stack).
fn faults_at(faults: &proto::FaultsReply, classes: &[String]) -> u64 {
    let dotted = |c: &str| c.replace('/', ".");
    let classes: Vec<String> = classes.iter().map(|c| dotted(c)).collect();
    let at = |f: &proto::Frame| classes.contains(&dotted(&f.class_name));
    faults.faults.iter().filter(|f| f.site.as_ref().is_some_and(at) || f.stack.iter().any(at)).map(|f| f.count).sum()
}

/// A fault's site as the canary's judgment tells sites apart: exception, class, method, descriptor.
fn fault_site(f: &proto::Fault) -> String {
    let site = f.site.as_ref();
    format!(
        "{} at {}.{}{}",
        f.exception,
        site.map_or("", |s| s.class_name.as_str()),
        site.map_or("", |s| s.method.as_str()),
        site.map_or("", |s| s.method_descriptor.as_str())
    )
}

/// The spec with `durable: true`, so a restarted JVM has the patch from its journal.
fn durable(spec: &str) -> Result<String, String> {
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(spec).map_err(|e| format!("the patch spec: {e}"))?;
    let map = value.as_mapping_mut().ok_or("the patch spec is not a mapping")?;
    map.insert("durable".into(), true.into());
    serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())
}

/// The classes a deployment changed (the canary's faults are judged at them); a build that
/// changes nothing in this JVM is an error, or the daemon would deploy it again and again.
fn deployed_classes(reply: &proto::DeployReply) -> Result<Vec<String>, String> {
    if !reply.applied {
        return Err(format!("the build changes no class of this JVM ({})", reply.summary));
    }
    Ok(reply.classes.iter().filter(|c| c.state == "changed" || c.state == "pending").map(|c| c.name.clone()).collect())
}

/// The marker of the fleet on what it applies: `fleet:<rollout>`.
fn who(rollout: &str) -> String {
    format!("fleet:{rollout}")
}

/// The rollout a patch was applied for, from its `who` (`operator:fleet:<rollout>`).
fn fleet_rollout(who: &str) -> Option<&str> {
    who.strip_prefix("operator:").unwrap_or(who).strip_prefix("fleet:")
}

/// What a JVM runs of the fleet's: (patch id, rollout) of its active fleet patches, and the
/// rollout of its policy when the fleet put it there.
struct Running {
    patches: Vec<(String, String, Vec<String>)>,
    policy: Option<String>,
    faults_sites: u64,
    agent_version: String,
}

impl Daemon {
    fn take(&mut self, message: Message) {
        match message {
            Message::Snapshot(service, values) => {
                if let Some(s) = self.services.get_mut(&service) {
                    s.1 = Some(values);
                }
            }
            Message::Changes(service, changes) => {
                if let Some((_, Some(cache), _)) = self.services.get_mut(&service) {
                    for (key, value) in changes {
                        match value {
                            Some(v) => cache.insert(key, v),
                            None => cache.remove(&key),
                        };
                    }
                }
            }
            Message::Lease(lease) => {
                self.lease = lease;
                // Under a new lease every instance is reported again.
                for i in self.instances.values_mut() {
                    i.reported = None;
                }
            }
        }
    }

    fn wanted(&self, jvm: &crate::cli::ps::Jvm) -> bool {
        if let Some(pids) = &self.config.pids {
            if !pids.contains(&jvm.pid) {
                return false;
            }
        }
        match (&self.config.agents_dir, &jvm.endpoint) {
            (Some(dir), Some(e)) => e.strip_prefix("unix:").is_some_and(|p| std::path::Path::new(p).starts_with(dir)),
            (Some(_), None) => false,
            (None, e) => e.as_deref().is_some_and(|e| e.starts_with("unix:")),
        }
    }

    /// Finds the local JVMs with the agent: new ones are asked their service, gone ones are
    /// removed from the store.
    async fn rescan(&mut self) {
        let jvms: Vec<crate::cli::ps::Jvm> =
            crate::cli::ps::list().into_iter().filter(|j| j.agent && self.wanted(j)).collect();
        let gone: Vec<u32> = self.instances.keys().filter(|p| !jvms.iter().any(|j| j.pid == **p)).copied().collect();
        for pid in gone {
            if let Some(i) = self.instances.remove(&pid) {
                log(&format!("{}: the JVM is gone", i.id));
                if let Some((keys, ..)) = self.services.get(&i.service) {
                    if let Err(e) = store::delete_instance(&self.etcd, keys, &i.id).await {
                        log(&format!("{}: {e} (its lease removes it)", i.id));
                    }
                }
            }
        }
        let new: Vec<&crate::cli::ps::Jvm> = jvms.iter().filter(|j| !self.instances.contains_key(&j.pid)).collect();
        for jvm in new {
            let Ok(mut agent) = connect(&Target::Pid(jvm.pid), &Credentials::default()).await else { continue };
            let Ok(status) = agent.status(proto::StatusRequest {}).await.map(tonic::Response::into_inner) else {
                continue;
            };
            let service = if status.service.is_empty() { jvm.main.clone() } else { status.service.clone() };
            if let Err(e) = super::check_service(&service) {
                log(&format!(
                    "JVM {} ({}): no usable service name {service:?}: {e}; give the agent service=NAME",
                    jvm.pid, jvm.main
                ));
                continue;
            }
            let id = format!("{}/{}", self.config.host, jvm.pid);
            log(&format!("{id}: JVM of service {service}"));
            if !self.services.contains_key(&service) {
                let keys = Keys::new(&service);
                let task = tokio::spawn(watch_task(self.etcd.clone(), service.clone(), keys.clone(), self.tx.clone()));
                self.services.insert(service.clone(), (keys, None, task));
            }
            self.instances.insert(
                jvm.pid,
                Instance { id, service, agent: Some(agent), reported: None, hold: None, failed: None },
            );
        }
    }

    async fn reconcile_all(&mut self) {
        let pids: Vec<u32> = self.instances.keys().copied().collect();
        for pid in pids {
            if let Err(e) = self.reconcile(pid).await {
                if let Some(i) = self.instances.get_mut(&pid) {
                    log(&format!("{}: {e}", i.id));
                    i.agent = None;
                }
            }
        }
    }

    async fn agent(&mut self, pid: u32) -> Result<Client, String> {
        let i = self.instances.get_mut(&pid).ok_or("gone")?;
        if i.agent.is_none() {
            i.agent = Some(connect(&Target::Pid(pid), &Credentials::default()).await?);
        }
        Ok(i.agent.clone().expect("just set"))
    }

    async fn running(&mut self, pid: u32, policy_too: bool) -> Result<Running, String> {
        let mut agent = self.agent(pid).await?;
        let status: proto::StatusReply = crate::cli::live::rpc(agent.status(proto::StatusRequest {}).await)?;
        let patches: proto::PatchesReply = crate::cli::live::rpc(agent.patches(proto::PatchesRequest {}).await)?;
        let policy = if policy_too {
            let p: proto::PolicyReply = crate::cli::live::rpc(agent.policy_show(proto::PolicyShowRequest {}).await)?;
            p.source.strip_prefix("fleet:").filter(|_| p.loaded).map(str::to_string)
        } else {
            None
        };
        Ok(Running {
            patches: patches
                .patches
                .into_iter()
                .filter(|p| p.state == "active")
                .filter_map(|p| fleet_rollout(&p.who).map(|r| (p.id.clone(), r.to_string(), p.classes.clone())))
                .collect(),
            policy,
            faults_sites: status.faults_seen,
            agent_version: status.agent_version,
        })
    }

    /// The faults a canary is judged by: for a patch or a build, the counts at the classes it
    /// changed; for a policy (`sites_before`, which repairs faults already there, so they go on
    /// until its rules fire) the counts at sites that were not faulting when it was applied:
    /// what its repairs caused elsewhere. Also the sites there are now.
    async fn faults(
        &mut self,
        pid: u32,
        classes: &[String],
        sites_before: Option<&HashSet<String>>,
    ) -> Result<(u64, HashSet<String>), String> {
        let mut agent = self.agent(pid).await?;
        let f = agent.faults(proto::FaultsRequest {}).await.map_err(|s| describe(&s))?.into_inner();
        let sites: HashSet<String> = f.faults.iter().map(fault_site).collect();
        let count = match sites_before {
            Some(before) => f.faults.iter().filter(|x| !before.contains(&fault_site(x))).map(|x| x.count).sum(),
            None => faults_at(&f, classes),
        };
        Ok((count, sites))
    }

    /// Puts `desired` in force in JVM `pid`.
    async fn apply(&mut self, pid: u32, desired: &Desired) -> Result<Vec<String>, String> {
        let mut agent = self.agent(pid).await?;
        match desired.kind {
            Kind::Patch => {
                let req = proto::ApplyRequest {
                    spec_yaml: durable(&desired.content)?,
                    source: format!("fleet rollout {}", desired.id),
                    attachments: HashMap::new(),
                    who: who(&desired.id),
                    allow_jdk: false,
                };
                agent.apply(req).await.map(|p| p.into_inner().classes).map_err(|s| describe(&s))
            }
            Kind::Policy => {
                let req = proto::PolicyApplyRequest {
                    yaml: desired.content.clone(),
                    source: who(&desired.id),
                    who: who(&desired.id),
                };
                agent.policy_apply(req).await.map(|_| Vec::new()).map_err(|s| describe(&s))
            }
            Kind::Deploy => {
                let (build, class_files) = super::BuildContent::from_content(&desired.content)?;
                let req = proto::DeployRequest {
                    id: desired.name.clone(),
                    source: format!("{} (fleet rollout {})", build.source, desired.id),
                    class_files: class_files.into_iter().collect(),
                    resources: build.resources,
                    dry_run: false,
                    // Restored from the journal by a restarted JVM, as the fleet's patches are.
                    durable: true,
                    who: who(&desired.id),
                    // Whole or nothing: a class the JVM cannot take refuses the deployment.
                    partial: false,
                };
                let reply = agent.deploy(req).await.map_err(|s| describe(&s))?.into_inner();
                deployed_classes(&reply)
            }
        }
    }

    /// Rolls back the fleet's patch `id` (or, for `None`, the fleet's policy) in JVM `pid`.
    async fn roll_back(&mut self, pid: u32, id: Option<&str>, rollout: &str) -> Result<(), String> {
        let mut agent = self.agent(pid).await?;
        let r = match id {
            Some(id) => agent
                .rollback(proto::RollbackRequest { id: id.to_string(), all: false, who: who(rollout) })
                .await
                .map(|_| ()),
            None => agent
                .policy_apply(proto::PolicyApplyRequest {
                    yaml: "rules: []\n".into(),
                    source: "fleet: none".into(),
                    who: who(rollout),
                })
                .await
                .map(|_| ()),
        };
        r.map_err(|s| describe(&s))
    }

    /// One JVM toward its service's desired state; then its report, if it changed.
    async fn reconcile(&mut self, pid: u32) -> Result<(), String> {
        let (id, service) = {
            let i = &self.instances[&pid];
            (i.id.clone(), i.service.clone())
        };
        let Some((keys, Some(cache), _)) = self.services.get(&service) else { return Ok(()) };
        let keys = keys.clone();
        let (view, _) = View::from_keys(cache);
        let desired = view.rollout().map(|(d, p)| (d.clone(), p.clone()));
        let mut running = self.running(pid, true).await?;

        // Fleet patches of other rollouts give way once this one is to run here; with no desired
        // state at all, everything the fleet put here goes; a stopped rollout goes.
        let should = view.should_run(&id);
        for (patch, rollout, _) in running.patches.clone() {
            let keep = match &desired {
                None => view.desired.is_some(), // desired without a phase yet: wait
                Some((d, phase)) if rollout == d.id => !phase.stopped(),
                Some(_) => !should,
            };
            if !keep {
                self.roll_back(pid, Some(&patch), &rollout).await?;
                log(&format!("{id}: rolled back {patch} (rollout {rollout})"));
                running.patches.retain(|(p, _, _)| p != &patch);
            }
        }
        if let Some(rollout) = running.policy.clone() {
            let keep = match &desired {
                None => view.desired.is_some(),
                Some((d, phase)) if rollout == d.id => !phase.stopped(),
                Some(_) => !should,
            };
            if !keep && rollout != " none" && !rollout.is_empty() {
                self.roll_back(pid, None, &rollout).await?;
                log(&format!("{id}: removed the fleet's policy (rollout {rollout})"));
                running.policy = None;
            }
        }

        if let Some((d, phase)) = &desired {
            let runs = |r: &Running| match d.kind {
                Kind::Policy => r.policy.as_deref() == Some(d.id.as_str()),
                _ => r.patches.iter().any(|(p, ro, _)| p == &d.name && ro == &d.id),
            };
            let canary = view.slot_of(&id);
            let failed_here = self.instances[&pid].failed.as_deref() == Some(d.id.as_str());
            if failed_here {
                if *phase == rollout::Phase::Canary {
                    // The failure is not recorded yet (etcd was away): again.
                    self.fail(&keys, &view, &id, d, "failed during its hold (recorded late)").await;
                }
            } else if should && !runs(&running) {
                match self.apply(pid, d).await {
                    Ok(classes) => {
                        let policy = d.kind == Kind::Policy;
                        let (faults_before, sites_before) = if canary.is_some() {
                            let (count, sites) = self.faults(pid, &classes, None).await?;
                            if policy {
                                (0, Some(sites))
                            } else {
                                (count, None)
                            }
                        } else {
                            (0, None)
                        };
                        log(&format!(
                            "{id}: applied {} {} (rollout {}{})",
                            d.kind,
                            d.name,
                            d.id,
                            canary.map(|k| format!(", canary slot {k}")).unwrap_or_default()
                        ));
                        self.instances.get_mut(&pid).expect("reconciled").hold = Some(HoldState {
                            rollout: d.id.clone(),
                            since: Instant::now(),
                            faults_before,
                            sites_before,
                        });
                        running = self.running(pid, true).await?;
                    }
                    Err(e) if canary.is_some() => {
                        self.fail(&keys, &view, &id, d, &format!("apply refused: {e}")).await;
                    }
                    Err(e) => log(&format!("{id}: cannot apply {} (rollout {}): {e}", d.name, d.id)),
                }
            } else if should && canary.is_some() && *phase == rollout::Phase::Canary && !view.held.contains(&id) {
                // A canary holding: still in force, no more new faults than allowed.
                let classes: Vec<String> = running
                    .patches
                    .iter()
                    .find(|(p, ro, _)| p == &d.name && ro == &d.id)
                    .map(|(_, _, c)| c.clone())
                    .unwrap_or_default();
                let held = self.instances[&pid].hold.as_ref().filter(|h| h.rollout == d.id);
                let sites_before = held.and_then(|h| h.sites_before.clone());
                let fresh = held.is_none();
                let (faults_now, sites) = self.faults(pid, &classes, sites_before.as_ref()).await?;
                let instance = self.instances.get_mut(&pid).expect("reconciled");
                if fresh {
                    // Applied before this daemon started: the hold starts now.
                    let policy = d.kind == Kind::Policy;
                    instance.hold = Some(HoldState {
                        rollout: d.id.clone(),
                        since: Instant::now(),
                        faults_before: if policy { 0 } else { faults_now },
                        sites_before: policy.then_some(sites),
                    });
                }
                let h = instance.hold.as_ref().expect("set");
                match rollout::hold(
                    d,
                    h.since.elapsed().as_millis() as u64,
                    runs(&running),
                    h.faults_before,
                    faults_now,
                ) {
                    Hold::Waiting => {}
                    Hold::Held => {
                        store::put_held(&self.etcd, &keys, &d.id, &id).await?;
                        log(&format!("{id}: canary held {} for {} ms (rollout {})", d.name, d.hold_ms, d.id));
                    }
                    Hold::Failed(why) => {
                        self.fail(&keys, &view, &id, d, &why).await;
                        running = self.running(pid, true).await?;
                    }
                }
            } else if !should && *phase == rollout::Phase::Canary {
                if let Some(k) = view.free_slot(&id) {
                    if store::claim_slot(&self.etcd, &keys, &d.id, k, &id).await? {
                        log(&format!("{id}: canary slot {k} of rollout {}", d.id));
                    }
                }
            }
            if let Some(next) = view.next_phase() {
                let seen = view.phase.as_ref().map_or(0, |p| p.1);
                if store::move_phase(&self.etcd, &keys, &d.id, seen, &next).await? {
                    log(&format!("rollout {}: {phase} -> {next}", d.id));
                }
            }
        }

        // The report: put when it changed, under the lease.
        let runs_desired = desired.as_ref().is_some_and(|(d, _)| match d.kind {
            Kind::Policy => running.policy.as_deref() == Some(d.id.as_str()),
            _ => running.patches.iter().any(|(p, ro, _)| p == &d.name && ro == &d.id),
        });
        let mut names: Vec<String> = running.patches.iter().map(|(p, _, _)| p.clone()).collect();
        if let Some(r) = &running.policy {
            if let Some((d, _)) = desired.as_ref().filter(|(d, _)| &d.id == r) {
                names.push(d.running_marker());
            } else if !r.trim().is_empty() && r != " none" {
                names.push(format!("policy:{r}"));
            }
        }
        let stray = running.patches.iter().any(|(_, ro, _)| desired.as_ref().is_none_or(|(d, _)| &d.id != ro));
        let observed = Observed {
            id: id.clone(),
            host: self.config.host.clone(),
            pid,
            agent_version: running.agent_version.clone(),
            desired: view.desired.as_ref().map(|d| d.id.clone()),
            running: names,
            verdict: view.verdict(&id, runs_desired),
            matches: runs_desired == should && (!should || !stray),
            faults: running.faults_sites,
        };
        let text = serde_json::to_string(&observed).expect("serializes");
        let lease = self.lease;
        let instance = self.instances.get_mut(&pid).expect("reconciled");
        if let Some(lease) = lease {
            if instance.reported.as_deref() != Some(text.as_str()) {
                store::put_instance(&self.etcd, &keys, &observed, lease).await?;
                self.instances.get_mut(&pid).expect("reconciled").reported = Some(text);
            }
        }
        Ok(())
    }

    /// A canary failed: its patch rolled back here, the rollout's phase `failed` (the other
    /// canaries' daemons roll theirs back when they see it).
    async fn fail(&mut self, keys: &Keys, view: &View, instance: &str, d: &Desired, why: &str) {
        log(&format!("{instance}: canary failed {} (rollout {}): {why}", d.name, d.id));
        let pid = self.instances.iter().find(|(_, i)| i.id == instance).map(|(p, _)| *p);
        if let Some(pid) = pid {
            self.instances.get_mut(&pid).expect("found").failed = Some(d.id.clone());
            let target = if d.kind == Kind::Policy { None } else { Some(d.name.as_str()) };
            match self.roll_back(pid, target, &d.id).await {
                Ok(()) => log(&format!("{instance}: rolled back {} (rollout {})", d.name, d.id)),
                Err(e) => log(&format!("{instance}: rolling back {}: {e}", d.name)),
            }
        }
        let seen = view.phase.as_ref().map_or(0, |p| p.1);
        let phase = rollout::failure(instance, why);
        match store::move_phase(&self.etcd, keys, &d.id, seen, &phase).await {
            Ok(true) => log(&format!("rollout {}: {phase}", d.id)),
            Ok(false) => {}
            Err(e) => log(&format!("rollout {}: cannot record the failure yet: {e}", d.id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_marks_what_it_applies() {
        assert_eq!(fleet_rollout("operator:fleet:fix-12"), Some("fix-12"));
        assert_eq!(fleet_rollout("operator:ann"), None);
        assert_eq!(fleet_rollout("rule:price"), None);
        let spec = "id: fix\ntarget: { class: a.B, method: run }\naction:\n  guard: { fallback: default }\n";
        assert!(durable(spec).unwrap().contains("durable: true"));
        assert!(durable(&format!("{spec}durable: false\n")).unwrap().contains("durable: true"));
    }

    #[test]
    fn a_deployment_is_judged_at_the_classes_it_changed() {
        let class = |name: &str, state: &str| proto::DeployClass {
            name: name.into(),
            state: state.into(),
            ..Default::default()
        };
        let reply = proto::DeployReply {
            id: "deploy-shop".into(),
            applied: true,
            classes: vec![class("Shop", "changed"), class("Util", "unchanged"), class("Late", "pending")],
            summary: "deployed".into(),
            ..Default::default()
        };
        assert_eq!(deployed_classes(&reply).unwrap(), ["Shop", "Late"]);
        let nothing = proto::DeployReply { applied: false, summary: "nothing to deploy: 0 changed".into(), ..reply };
        assert!(deployed_classes(&nothing).unwrap_err().contains("changes no class of this JVM (nothing to deploy"));
    }
}
