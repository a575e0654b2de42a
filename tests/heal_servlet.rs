//! End to end on a real servlet container: Debian's Jetty 9 (`libjetty9-java`, jars in
//! /usr/share/java), embedded, serving a small webapp with real bugs — a price lookup that unboxes a
//! missing entry, a constructor that parses a missing parameter, and the text one of two `write`
//! overloads — each an HTTP 500 for some requests. One generic policy repairs them with no operator:
//! the failing requests then answer 200 with the degraded answer, the others exactly as before, and
//! each patch is on the exact method and descriptor (the other overload untouched).

mod agent_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::{agentpath, default_jdk, http_get, repairctl_json, Service, TempDir};

const JARS: [&str; 7] =
    ["jetty9-server", "jetty9-servlet", "jetty9-util", "jetty9-http", "jetty9-io", "jetty9-security", "servlet-api"];

/// Jetty 9's class path, or `None` (the test then says why it is skipped).
fn jetty_classpath() -> Option<String> {
    let jars: Vec<PathBuf> = JARS.iter().map(|j| Path::new("/usr/share/java").join(format!("{j}.jar"))).collect();
    jars.iter().all(|j| j.is_file()).then(|| jars.iter().map(|j| j.display().to_string()).collect::<Vec<_>>().join(":"))
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
    validate: { window: 1s, max_fallback_rate: 1.0 }
"#;

/// Request → (status, body) of one round of every request.
fn round(port: u16) -> BTreeMap<&'static str, (u16, String)> {
    const PATHS: [&str; 7] = [
        "/price?item=apple",
        "/price?item=fig",
        "/cart?items=a,b",
        "/cart",
        "/echo?text=hey",
        "/echo",
        "/echo?bytes=xyz",
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
    let classes = dir.0.join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let src = dir.0.join("Shop.java");
    std::fs::write(&src, SHOP).unwrap();
    let out = Command::new(default_jdk().tool("javac"))
        .args(["-g", "-cp", &classpath, "-d"])
        .arg(&classes)
        .arg(&src)
        .output()
        .expect("javac runs");
    assert!(out.status.success(), "javac: {}", String::from_utf8_lossy(&out.stderr));
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
    for bad in ["/price?item=fig", "/cart", "/echo"] {
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
    for good in ["/price?item=apple", "/cart?items=a,b", "/echo?text=hey", "/echo?bytes=xyz"] {
        assert_eq!(after[good], before[good], "{good} answers as before the repairs");
    }
    assert_eq!(after["/price?item=fig"].1, "price 0");
    assert_eq!(after["/cart"].1, "items 0", "the constructor returned after super() with what it had set");
    assert_eq!(after["/echo"].1, "length 0");

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
            "shop.Shop$Out.write(Ljava/lang/String;)I",
            "shop.Shop$Prices.of(Ljava/lang/String;)J",
        ],
        "one patch a faulting method, on its exact descriptor: {patches:#}"
    );
    let events = repairctl_json(&["events", "--pid", &pid, "-o", "json"]);
    assert!(
        !events.as_array().unwrap().iter().any(|e| e["kind"] == "rolled-back" || e["kind"] == "refused"),
        "{events:#}"
    );
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

    static final Prices PRICES = new Prices();

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
