package repair.harness;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.After;
import org.junit.Test;

/**
 * The demo service in its own JVM with the real librepair.so, repaired live over gRPC by the real
 * repairctl while client threads keep calling it; then rolled back. Also after dynamic attach.
 */
public class LivePatchTest {
    private Process service;
    private final List<Thread> clients = new ArrayList<>();
    private final AtomicBoolean stop = new AtomicBoolean();
    /** Per client thread, the rounds (a price and an order) it has finished. */
    private final AtomicLongArray rounds = new AtomicLongArray(CLIENTS);
    private static final int CLIENTS = 4;

    static File bin(String name) {
        File f = new File(System.getProperty("repair.bin", "../target/release"), name);
        assertTrue(name + " not built: " + f + " (run scripts/test.sh)", f.exists());
        return f;
    }

    /** Starts ShopService (with the agent, or without for attach); returns its port. */
    private int start(boolean withAgent) throws Exception {
        List<String> cmd = new ArrayList<>(Arrays.asList(System.getProperty("java.home") + "/bin/java"));
        if (withAgent) {
            cmd.add("-agentpath:" + bin("librepair.so").getCanonicalPath());
        }
        cmd.addAll(Arrays.asList("-cp", System.getProperty("java.class.path"), "repair.demo.ShopService"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
        // The agent's default state dir: per run, so no test sees another's durable patches.
        pb.environment().put("XDG_STATE_HOME", Files.createTempDirectory("repair-state").toString());
        service = pb.start();
        BufferedReader out = new BufferedReader(new InputStreamReader(service.getInputStream(), StandardCharsets.UTF_8));
        String line = out.readLine();
        assertTrue("service did not start: " + line, line != null && line.startsWith("LISTENING port="));
        return Integer.parseInt(line.substring("LISTENING port=".length()));
    }

    @After
    public void stopAll() throws Exception {
        stop.set(true);
        for (Thread t : clients) {
            t.join(5000);
        }
        if (service != null) {
            service.destroy();
            service.waitFor(10, TimeUnit.SECONDS);
            service.destroyForcibly();
        }
    }

    static String get(int port, String path, String method) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL("http://127.0.0.1:" + port + path).openConnection();
        c.setRequestMethod(method);
        c.setConnectTimeout(5000);
        c.setReadTimeout(5000);
        int code = c.getResponseCode();
        try (InputStream in = code == 200 ? c.getInputStream() : c.getErrorStream()) {
            return code + " " + new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
        }
    }

    static String repairctl(String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(bin("repairctl").getPath());
        cmd.addAll(Arrays.asList(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue("repairctl timed out", p.waitFor(60, TimeUnit.SECONDS));
        assertEquals("repairctl " + String.join(" ", args) + ": " + out, 0, p.exitValue());
        return out;
    }

    /** Four threads calling the faulty endpoints; counts answers that are errors. */
    private AtomicLong drive(int port) {
        AtomicLong errors = new AtomicLong();
        for (int t = 0; t < CLIENTS; t++) {
            int me = t;
            Thread c = new Thread(() -> {
                while (!stop.get()) {
                    try {
                        if (!get(port, "/price?item=durian", "GET").startsWith("200")) {
                            errors.incrementAndGet();
                        }
                        get(port, "/order?item=apple&qty=1", "POST");
                    } catch (Exception e) {
                        errors.incrementAndGet();
                    }
                    rounds.incrementAndGet(me);
                }
            });
            c.setDaemon(true);
            c.start();
            clients.add(c);
        }
        return errors;
    }

    private void repairAndRollBack(int port, String pid) throws Exception {
        AtomicLong errors = drive(port);
        Thread.sleep(300);
        assertTrue("the fault shows before the repair", errors.get() > 0);
        String started = get(port, "/stats", "GET").replaceAll("(?s).*started=(\\d+).*", "$1");
        repairctl("apply", "../demo/price-npe.yaml", "--pid", pid);
        assertEquals("200 0", get(port, "/price?item=durian", "GET"));
        // A request in flight while the class was redefined may still run the old code (and
        // fail): counted from when each client has finished the round it was in.
        awaitNextRound();
        long before = errors.get();
        Thread.sleep(300);
        assertEquals("no errors while repaired", before, errors.get());
        String stats = get(port, "/stats", "GET");
        assertTrue("same JVM, state kept: " + stats, stats.contains("started=" + started));
        int orders = Integer.parseInt(stats.replaceAll("(?s).*orders=(\\d+).*", "$1"));
        assertTrue("orders kept growing: " + stats, orders > 0);
        assertTrue(repairctl("patches", "--pid", pid).contains("price-npe"));
        repairctl("rollback", "price-npe", "--pid", pid);
        assertEquals("500 java.lang.NullPointerException", get(port, "/price?item=durian", "GET"));
    }

    /** Returns once every client thread has finished the round it is in now. */
    private void awaitNextRound() throws InterruptedException {
        long[] now = new long[CLIENTS];
        for (int t = 0; t < CLIENTS; t++) {
            now[t] = rounds.get(t);
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        for (int t = 0; t < CLIENTS; t++) {
            while (rounds.get(t) <= now[t]) {
                assertTrue("client " + t + " finished no round in 10 s", System.nanoTime() < deadline);
                Thread.sleep(5);
            }
        }
    }

    static String pidOf(Process p) {
        return Long.toString(p.pid());
    }

    @Test
    public void repairsTheRunningServiceAndRollsBack() throws Exception {
        int port = start(true);
        repairAndRollBack(port, pidOf(service));
    }

    @Test
    public void repairsAfterDynamicAttach() throws Exception {
        int port = start(false);
        assertEquals("200 120", get(port, "/price?item=apple", "GET"));
        assertTrue(repairctl("attach", pidOf(service)).contains("agent loaded"));
        assertTrue(repairctl("status", "--pid", pidOf(service)).contains("onattach"));
        repairAndRollBack(port, pidOf(service));
    }
}
