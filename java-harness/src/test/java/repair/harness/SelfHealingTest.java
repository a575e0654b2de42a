package repair.harness;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.After;
import org.junit.Test;

/**
 * The demo service with the real agent and demo/policy.yaml, under traffic from four threads:
 * no operator applies anything. The three faults are repaired by their rules, the service keeps
 * its state, the events tell the story; after kill -9 the durable repairs are back before the
 * first request and the history shows the earlier run.
 */
public class SelfHealingTest {
    static final String[] PATHS = {
        "/price?item=apple", "/price?item=durian", "/ratio?a=7&b=0", "/ratio?a=9&b=3",
        "/order?item=pear&qty=1", "/orders?page=0&size=5", "/orders?page=99&size=5",
    };
    private final List<Process> services = new ArrayList<>();
    private final AtomicBoolean stop = new AtomicBoolean();

    private Process start(File state) throws Exception {
        File policy = new File("../demo/policy.yaml").getCanonicalFile();
        assertTrue("no " + policy, policy.exists());
        List<String> cmd = new ArrayList<>(Arrays.asList(
                System.getProperty("java.home") + "/bin/java",
                "-agentpath:" + LivePatchTest.bin("librepair.so").getCanonicalPath() + "=policy=" + policy + ",state=" + state,
                "-cp", System.getProperty("java.class.path"), "repair.demo.ShopService"));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        services.add(p);
        return p;
    }

    private static int port(Process p) throws Exception {
        String line = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8)).readLine();
        assertTrue("service did not start: " + line, line != null && line.startsWith("LISTENING port="));
        return Integer.parseInt(line.substring("LISTENING port=".length()));
    }

    @After
    public void stopAll() throws Exception {
        stop.set(true);
        for (Process p : services) {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
    }

    /** [ok, errors] per path, from four client threads until {@code stop}. */
    private Map<String, AtomicLong[]> drive(int port, List<Thread> threads) {
        Map<String, AtomicLong[]> counts = new LinkedHashMap<>();
        for (String p : PATHS) {
            counts.put(p, new AtomicLong[] {new AtomicLong(), new AtomicLong()});
        }
        for (int t = 0; t < 4; t++) {
            final int first = t;
            Thread c = new Thread(() -> {
                for (int i = first; !stop.get(); i++) {
                    String path = PATHS[i % PATHS.length];
                    try {
                        boolean ok = LivePatchTest.get(port, path, "GET").startsWith("200");
                        counts.get(path)[ok ? 0 : 1].incrementAndGet();
                    } catch (Exception e) {
                        counts.get(path)[1].incrementAndGet();
                    }
                }
            });
            c.setDaemon(true);
            c.start();
            threads.add(c);
        }
        return counts;
    }

    private static long stat(int port, String key) throws Exception {
        String stats = LivePatchTest.get(port, "/stats", "GET");
        return Long.parseLong(stats.replaceAll("(?s).*" + key + "=(\\d+).*", "$1"));
    }

    @Test
    public void policyAloneRepairsTheThreeFaultsAndDurableRepairsSurviveKill9() throws Exception {
        File state = Files.createTempDirectory("repair-state").toFile();
        Process service = start(state);
        int port = port(service);
        String pid = Long.toString(service.pid());
        long started = stat(port, "started");

        List<Thread> threads = new ArrayList<>();
        Map<String, AtomicLong[]> counts = drive(port, threads);
        String events = "";
        long deadline = System.currentTimeMillis() + 60_000;
        while (!(validated(events, "price-npe") && validated(events, "ratio-zero")
                && validated(events, "orders-page"))) {
            assertTrue("the rules did not repair within 60 s:\n" + events, System.currentTimeMillis() < deadline);
            Thread.sleep(200);
            events = LivePatchTest.repairctl("events", "--pid", pid);
        }
        stop.set(true);
        for (Thread t : threads) {
            t.join(10_000);
        }
        for (String faulty : new String[] {PATHS[1], PATHS[2], PATHS[6]}) {
            long errors = counts.get(faulty)[1].get();
            assertTrue(faulty + ": " + errors + " errors before its rule held (threshold 3, 4 threads)\n" + events,
                    errors >= 1 && errors <= 3 + 4);
        }
        assertTrue(events, events.contains("fired") && events.contains("applied"));
        assertTrue("no repair was rolled back:\n" + events, !events.contains("rolled-back"));

        assertEquals("200 0", LivePatchTest.get(port, "/price?item=durian", "GET"));
        assertEquals("200 120", LivePatchTest.get(port, "/price?item=apple", "GET"));
        assertEquals("200 0", LivePatchTest.get(port, "/ratio?a=5&b=0", "GET"));
        assertEquals("200", LivePatchTest.get(port, "/orders?page=99&size=5", "GET").trim());
        assertEquals("same JVM", started, stat(port, "started"));
        assertEquals("every order kept", counts.get(PATHS[4])[0].get(), stat(port, "orders"));

        // kill -9, then the same state dir: durable repairs before the first request.
        service.destroyForcibly();
        service.waitFor(10, TimeUnit.SECONDS);
        Process again = start(state);
        int port2 = port(again);
        assertEquals("200 0", LivePatchTest.get(port2, "/price?item=durian", "GET"));
        assertEquals("200 0", LivePatchTest.get(port2, "/ratio?a=5&b=0", "GET"));
        String history = LivePatchTest.repairctl("history", "--pid", Long.toString(again.pid()));
        for (String rule : new String[] {"rule:price-npe", "rule:ratio-zero", "rule:orders-page"}) {
            assertTrue("history shows " + rule + ":\n" + history, history.contains(rule));
        }
        assertTrue(history, history.contains("validated") && history.contains("durable"));
        assertTrue(LivePatchTest.repairctl("events", "--pid", Long.toString(again.pid())).contains("restored"));
    }

    private static boolean validated(String events, String rule) {
        for (String line : events.split("\n")) {
            if (line.contains(" validated ") && line.contains("rule=" + rule + " ")) {
                return true;
            }
        }
        return false;
    }
}
