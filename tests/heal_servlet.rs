//! End to end on a real servlet container: Debian's Jetty 9 (`libjetty9-java`, jars in
//! /usr/share/java), embedded, serving a small webapp with real bugs — a price lookup that unboxes a
//! missing entry, a constructor that parses a missing parameter, and the text one of two `write`
//! overloads, a discount lookup whose `null` the servlet answers with a 500 of its own — each an
//! HTTP 500 for some requests. One generic policy repairs them with no operator, judged by the
//! response status (a health signal on Jetty's `HttpChannel.onCompleted`): the failing requests then
//! answer 200 with the degraded answer, the others exactly as before, each patch is on the exact
//! method and descriptor (the other overload untouched), and the guard whose `null` left the 500 in
//! place was rolled back for the guard at its caller.
//!
//! A second webapp has faults that happen once or hang instead: a servlet whose `init()` fails at
//! deploy time (Jetty marks its webapp unavailable: 503 until the next start) and a request that
//! waits for a worker that threw before completing it (the client gives up). A durable rule that
//! fires on the first occurrence repairs both; the deploy-time repair, never called again in that
//! JVM, is journaled durable-but-unproven, and at the next start the webapp deploys and the
//! restored repair is validated again.

mod agent_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::{agentpath, default_jdk, events, http_get, repairctl_json, Service, TempDir};
use repair_model::journal::{durable_patches, read_history};

const JARS: [&str; 9] = [
    "jetty9-server",
    "jetty9-servlet",
    "jetty9-util",
    "jetty9-http",
    "jetty9-io",
    "jetty9-security",
    "jetty9-webapp",
    "jetty9-xml",
    "servlet-api",
];

/// Jetty 9's class path, or `None` (the test then says why it is skipped).
fn jetty_classpath() -> Option<String> {
    let jars: Vec<PathBuf> = JARS.iter().map(|j| Path::new("/usr/share/java").join(format!("{j}.jar"))).collect();
    jars.iter().all(|j| j.is_file()).then(|| jars.iter().map(|j| j.display().to_string()).collect::<Vec<_>>().join(":"))
}

/// Compiles `source` (`file` in package `shop`) against Jetty into `dir`/classes.
fn compile_webapp(dir: &Path, classpath: &str, file: &str, source: &str) -> PathBuf {
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let src = dir.join(file);
    std::fs::write(&src, source).unwrap();
    let out = Command::new(default_jdk().tool("javac"))
        .args(["-g", "-cp", classpath, "-d"])
        .arg(&classes)
        .arg(&src)
        .output()
        .expect("javac runs");
    assert!(out.status.success(), "javac: {}", String::from_utf8_lossy(&out.stderr));
    classes
}

/// `GET path` as a client that gives up after `limit`: `None` when no answer came by then.
fn http_get_within(port: u16, path: &str, limit: Duration) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(limit)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

const POLICY: &str = r#"
mode: enforce
application: ["shop.*"]
rules:
  - name: webapp
    when: { exception: java.lang.RuntimeException, in: "shop.*", count: 2, within: 60s }
    then:
      - guard: { catch: [fault], fallback: default }
      - { guard: { catch: [fault], fallback: default }, at: caller }
    validate:
      window: 1s
      max_fallback_rate: 1.0
      # What users see: the status of each response as Jetty completes it.
      health: { method: org.eclipse.jetty.server.HttpChannel.onCompleted, failure: "this._response._status >= 500" }
"#;

/// Request → (status, body) of one round of every request.
fn round(port: u16) -> BTreeMap<&'static str, (u16, String)> {
    const PATHS: [&str; 9] = [
        "/price?item=apple",
        "/price?item=fig",
        "/cart?items=a,b",
        "/cart",
        "/echo?text=hey",
        "/echo",
        "/echo?bytes=xyz",
        "/discount?code=spring",
        "/discount?code=bogus",
    ];
    PATHS.iter().map(|p| (*p, http_get(port, p))).collect()
}

#[test]
fn a_jetty_webapp_is_repaired_by_policy_alone_and_its_500s_become_200s() {
    let Some(classpath) = jetty_classpath() else {
        println!("skipped: Jetty 9 is not in /usr/share/java (scripts/setup.sh installs libjetty9-java)");
        return;
    };
    let dir = TempDir::new("heal-servlet");
    let classes = compile_webapp(&dir.0, &classpath, "Shop.java", SHOP);
    let policy = dir.0.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut command = Command::new(default_jdk().java());
    command.arg(agentpath(&format!("state={},policy={}", dir.0.join("state").display(), policy.display()))).args([
        "-cp",
        &format!("{}:{classpath}", classes.display()),
        "shop.Shop",
    ]);
    let mut svc = Service::start(command);
    let port: u16 = svc.send("port").trim_start_matches("PORT ").trim().parse().unwrap();
    let pid = svc.pid.to_string();

    let before = round(port);
    for bad in ["/price?item=fig", "/cart", "/echo", "/discount?code=bogus"] {
        assert_eq!(before[bad].0, 500, "{bad} fails before any repair: {:?}", before[bad]);
    }
    // Traffic until every request answers 200 (the policy needs each fault twice, then a window).
    let started = Instant::now();
    let after = loop {
        let r = round(port);
        if r.values().all(|(status, _)| *status == 200) {
            break r;
        }
        let events = repairctl_json(&["events", "--pid", &pid, "-o", "json"]);
        assert!(started.elapsed() < Duration::from_secs(60), "still failing: {r:?}\nevents: {events:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for good in ["/price?item=apple", "/cart?items=a,b", "/echo?text=hey", "/echo?bytes=xyz", "/discount?code=spring"] {
        assert_eq!(after[good], before[good], "{good} answers as before the repairs");
    }
    assert_eq!(after["/price?item=fig"].1, "price 0");
    assert_eq!(after["/cart"].1, "items 0", "the constructor returned after super() with what it had set");
    assert_eq!(after["/echo"].1, "length 0");
    assert_eq!(after["/discount?code=bogus"].1, "", "the servlet returned before writing: an empty 200");

    let patches = repairctl_json(&["patches", "--pid", &pid, "-o", "json"]);
    let mut targets: Vec<String> = patches
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!("{}.{}", p["classes"][0].as_str().unwrap_or_default(), p["method"].as_str().unwrap_or_default())
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "shop.Shop$Cart.<init>(Ljava/lang/String;)V",
            "shop.Shop$DiscountServlet.doGet(Ljavax/servlet/http/HttpServletRequest;Ljavax/servlet/http/HttpServletResponse;)V",
            "shop.Shop$Out.write(Ljava/lang/String;)I",
            "shop.Shop$Prices.of(Ljava/lang/String;)J",
        ],
        "one patch a faulting method, on its exact descriptor: {patches:#}"
    );
    // The guard on the discount lookup raised no fault, but its `null` made the servlet answer
    // 500 itself: the health signal (the response status) rolled it back, and the guard at the
    // caller that followed answers 200.
    let events = repairctl_json(&["events", "--pid", &pid, "-o", "json"]);
    let events = events.as_array().unwrap();
    let undone: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["kind"] == "rolled-back" || e["kind"] == "refused")
        .map(|e| (e["site"].as_str().unwrap_or_default(), e["reason"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(undone.len(), 1, "{events:#?}");
    assert!(undone[0].0.starts_with("shop.Shop$Discounts.label"), "{undone:?}");
    assert!(
        undone[0].1.starts_with(
            "health signal org.eclipse.jetty.server.HttpChannel.onCompleted: a call meeting \
             `this._response._status >= 500` (this._response._status = 500) followed its fallback"
        ),
        "{undone:?}"
    );
    // Each repair that stays is validated once its window (1s) of traffic has passed.
    let validated = |events: &serde_json::Value, patch: &str| {
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "validated" && e["patch"].as_str().unwrap_or_default().contains(patch))
    };
    let started = Instant::now();
    loop {
        round(port);
        let events = repairctl_json(&["events", "--pid", &pid, "-o", "json"]);
        if validated(&events, "Shop_DiscountServlet.doGet") && validated(&events, "Shop_Prices.of") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not validated: {events:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    svc.finish();
}

const SHOP: &str = r#"package shop;

import java.io.IOException;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

/** A small webapp on embedded Jetty 9 with three real bugs, each an HTTP 500 for some requests. */
public final class Shop {
    /** Prices by item; an unknown item is unboxed from null (NPE). */
    static final class Prices {
        private final Map<String, Long> byItem = new HashMap<>();
        Prices() { byItem.put("apple", 3L); byItem.put("pear", 5L); }
        long of(String item) { return byItem.get(item); }
    }

    /** A cart parsed from `a,b,c`; a request without items makes the constructor throw. */
    static final class Cart {
        final List<String> items = new ArrayList<>();
        Cart(String raw) {
            for (String s : raw.split(",")) {
                items.add(s.trim());
            }
        }
    }

    /** Two overloads; only the text one fails, on a missing text. */
    static final class Out {
        static int write(byte[] bytes) { return bytes.length; }
        static int write(String text) { return text.length(); }
    }

    /** Discount labels by code; an unknown code is refused by the lookup, and a missing label
     *  is the webapp's own error: it answers 500 without any exception. */
    static final class Discounts {
        private final Map<String, String> byCode = new HashMap<>();
        Discounts() { byCode.put("spring", "10%"); }
        String label(String code) {
            if (!byCode.containsKey(code)) throw new IllegalStateException("no discount " + code);
            return byCode.get(code);
        }
    }

    static final Prices PRICES = new Prices();
    static final Discounts DISCOUNTS = new Discounts();

    public static final class PriceServlet extends HttpServlet {
        @Override protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            resp.getWriter().print("price " + PRICES.of(req.getParameter("item")));
        }
    }

    public static final class CartServlet extends HttpServlet {
        @Override protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            resp.getWriter().print("items " + new Cart(req.getParameter("items")).items.size());
        }
    }

    public static final class EchoServlet extends HttpServlet {
        @Override protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            int n = req.getParameter("bytes") != null ? Out.write(req.getParameter("bytes").getBytes()) : Out.write(req.getParameter("text"));
            resp.getWriter().print("length " + n);
        }
    }

    public static final class DiscountServlet extends HttpServlet {
        @Override protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            String label = DISCOUNTS.label(req.getParameter("code"));
            if (label == null) {
                resp.sendError(500, "no label");
                return;
            }
            resp.getWriter().print("discount " + label);
        }
    }

    public static void main(String[] args) throws Exception {
        Server server = new Server();
        ServerConnector http = new ServerConnector(server);
        http.setHost("127.0.0.1");
        http.setPort(0);
        server.addConnector(http);
        ServletContextHandler context = new ServletContextHandler();
        context.addServlet(new ServletHolder(new PriceServlet()), "/price");
        context.addServlet(new ServletHolder(new CartServlet()), "/cart");
        context.addServlet(new ServletHolder(new EchoServlet()), "/echo");
        context.addServlet(new ServletHolder(new DiscountServlet()), "/discount");
        server.setHandler(context);
        server.start();
        System.out.println("READY " + ProcessHandle.current().pid());
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            System.out.println("PORT " + http.getLocalPort());
            System.out.flush();
        }
        server.stop();
    }
}
"#;

/// One generic rule that fires on the first occurrence and keeps its repairs across restarts. A
/// restored repair's window starts with the JVM: `max_window` leaves the test time to call it.
const POLICY_ONCE: &str = r#"
mode: enforce
application: ["shop.*"]
rules:
  - name: once
    when: { exception: java.lang.RuntimeException, in: "shop.*", count: 1 }
    then:
      - guard: { catch: [fault], fallback: default }
    validate: { window: 1s, max_window: 10s, max_fallback_rate: 1.0 }
    durable: true
"#;

/// The `/catalog` webapp's servlet `init()`, by its patch's target.
const CATALOG_INIT: &str = "shop.Store$CatalogServlet.init()V";
/// The stock lookup the `/stock` webapp's worker runs.
const STOCK_OF: &str = "shop.Store$Stock.of(Ljava/lang/String;)I";

/// The events about the patch at `site` (class.method+descriptor; a `restored` event names the
/// method without its descriptor), as `(kind, reason)`.
fn events_at(pid: u32, site: &str) -> Vec<(String, String)> {
    events(pid)
        .iter()
        .filter(|e| e["site"].as_str().is_some_and(|s| !s.is_empty() && site.starts_with(s)))
        .map(|e| (e["kind"].as_str().unwrap_or_default().to_string(), e["reason"].as_str().unwrap_or_default().into()))
        .collect()
}

/// Waits (30 s) until an event at `site` of `kind` says `says`; returns its reason.
fn await_event(pid: u32, site: &str, kind: &str, says: &str) -> String {
    let started = Instant::now();
    loop {
        let at = events_at(pid, site);
        if let Some((_, reason)) = at.iter().find(|(k, r)| k == kind && r.contains(says)) {
            return reason.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no {kind} event saying {says:?} at {site}: {:#?}",
            events(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_store(classes: &Path, classpath: &str, dir: &Path, state: &Path, policy: &Path) -> (Service, u16) {
    let mut command = Command::new(default_jdk().java());
    command.arg(agentpath(&format!("state={},policy={}", state.display(), policy.display()))).args([
        "-cp",
        &format!("{}:{classpath}", classes.display()),
        "shop.Store",
    ]);
    command.arg(dir.join("catalog-webapp"));
    let mut svc = Service::start(command);
    let port = svc.send("port").trim_start_matches("PORT ").trim().parse().unwrap();
    (svc, port)
}

#[test]
fn a_deploy_time_fault_and_a_hung_request_are_repaired_and_the_repair_is_validated_again_at_the_next_start() {
    let Some(classpath) = jetty_classpath() else {
        println!("skipped: Jetty 9 is not in /usr/share/java (scripts/setup.sh installs libjetty9-java)");
        return;
    };
    let dir = TempDir::new("heal-servlet-once");
    let classes = compile_webapp(&dir.0, &classpath, "Store.java", STORE);
    std::fs::create_dir_all(dir.0.join("catalog-webapp")).unwrap();
    let policy = dir.0.join("policy.yaml");
    std::fs::write(&policy, POLICY_ONCE).unwrap();
    let state = dir.0.join("state");
    let hang = Duration::from_secs(2);

    // First start: the catalog webapp failed to deploy.
    let (svc, port) = start_store(&classes, &classpath, &dir.0, &state, &policy);
    assert_eq!(http_get(port, "/catalog/").0, 503, "the catalog is unavailable after its deploy-time fault");
    assert_eq!(http_get(port, "/stock/?item=apple"), (200, "stock 7".to_string()));
    // The worker throws before completing the answer: the request hangs until the client gives up.
    assert_eq!(http_get_within(port, "/stock/?item=fig", hang), None, "the request hangs before any repair");
    let started = Instant::now();
    let repaired = loop {
        if let Some(answer) = http_get_within(port, "/stock/?item=fig", hang) {
            break answer;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still hanging: {:#?}", events(svc.pid));
    };
    assert_eq!(repaired, (200, "stock 0".to_string()), "the request completes with the degraded answer");
    // Calls for the stock repair's verdict (a handful), which is validated and kept durable.
    for _ in 0..6 {
        assert_eq!(http_get(port, "/stock/?item=fig"), (200, "stock 0".to_string()));
        assert_eq!(http_get(port, "/stock/?item=apple"), (200, "stock 7".to_string()));
    }
    await_event(svc.pid, STOCK_OF, "validated", "kept across restarts");
    // The init() repair is never called again in this JVM: unproven, journaled durable anyway.
    let unproven = await_event(svc.pid, CATALOG_INIT, "unproven", "durable-but-unproven");
    assert!(unproven.contains("0 calls"), "{unproven}");
    assert_eq!(http_get(port, "/catalog/").0, 503, "a repair does not redeploy the webapp");
    svc.finish();
    let mut durable: Vec<Vec<String>> =
        durable_patches(&read_history(&state).unwrap()).into_iter().map(|r| r.classes).collect();
    durable.sort();
    assert_eq!(durable, [["shop.Store$CatalogServlet"], ["shop.Store$Stock"]], "both repairs are durable");

    // Next start on the same state dir: the catalog deploys with its restored repair.
    let (svc, port) = start_store(&classes, &classpath, &dir.0, &state, &policy);
    assert_eq!(http_get(port, "/catalog/"), (200, "page size 10".to_string()), "deployed, with the default page size");
    assert_eq!(http_get(port, "/stock/?item=fig"), (200, "stock 0".to_string()), "no hang from the first request");
    assert_eq!(http_get(port, "/stock/?item=apple"), (200, "stock 7".to_string()));
    for site in [CATALOG_INIT, STOCK_OF] {
        await_event(svc.pid, site, "restored", "restored; validating under rule once");
    }
    let validated = await_event(svc.pid, CATALOG_INIT, "validated", "restored from the journal and validated again");
    assert!(validated.contains("over 1 calls") && validated.contains("stays durable"), "{validated}");
    await_event(svc.pid, STOCK_OF, "validated", "restored from the journal and validated again");
    let all = events(svc.pid);
    assert!(
        !all.iter().any(|e| e["kind"] == "rolled-back" || e["kind"] == "refused" || e["kind"] == "fired"),
        "nothing failed, nothing new to repair: {all:#?}"
    );
    svc.finish();
}

const STORE: &str = r#"package shop;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import javax.servlet.ServletException;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ContextHandlerCollection;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.eclipse.jetty.webapp.WebAppContext;

/** Two webapps on embedded Jetty 9: one fails at deploy time, one hangs a request. */
public final class Store {
    /** Its page size comes from an init parameter nobody set: init() throws at deploy time. */
    public static final class CatalogServlet extends HttpServlet {
        private int pageSize = 10;
        @Override public void init() {
            pageSize = Integer.parseInt(getInitParameter("pageSize"));
        }
        @Override protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            resp.getWriter().print("page size " + pageSize);
        }
    }

    /** Stock by item; an unknown item is unboxed from null (NPE). */
    static final class Stock {
        private final Map<String, Integer> byItem = new HashMap<>();
        Stock() { byItem.put("apple", 7); }
        int of(String item) { return byItem.get(item); }
    }

    static final Stock STOCK = new Stock();
    static final ExecutorService WORKERS = Executors.newFixedThreadPool(2);

    /** Counts are looked up by a worker; one that throws never completes the answer. */
    public static final class StockServlet extends HttpServlet {
        @Override protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException, ServletException {
            String item = req.getParameter("item");
            CompletableFuture<Integer> count = new CompletableFuture<>();
            WORKERS.submit(() -> count.complete(STOCK.of(item)));
            try {
                resp.getWriter().print("stock " + count.get());
            } catch (InterruptedException | ExecutionException e) {
                throw new ServletException(e);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        Server server = new Server();
        ServerConnector http = new ServerConnector(server);
        http.setHost("127.0.0.1");
        http.setPort(0);
        server.addConnector(http);
        // A webapp: a failed deploy leaves it unavailable (503) and the server up.
        WebAppContext catalog = new WebAppContext();
        catalog.setContextPath("/catalog");
        catalog.setResourceBase(args[0]);
        catalog.addServlet(new ServletHolder(new CatalogServlet()), "/");
        ServletContextHandler stock = new ServletContextHandler();
        stock.setContextPath("/stock");
        stock.addServlet(new ServletHolder(new StockServlet()), "/");
        ContextHandlerCollection contexts = new ContextHandlerCollection();
        contexts.addHandler(catalog);
        contexts.addHandler(stock);
        server.setHandler(contexts);
        server.start();
        System.out.println("READY " + ProcessHandle.current().pid());
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            System.out.println("PORT " + http.getLocalPort());
            System.out.flush();
        }
        server.stop();
        WORKERS.shutdownNow();
    }
}
"#;
