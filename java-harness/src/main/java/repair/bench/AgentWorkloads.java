package repair.bench;

import java.io.File;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.Collections;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * Workloads for scripts/bench-agent.sh, each in its own JVM (a "fork").
 *
 * <pre>
 * cpu SECONDS         CPU-bound work for SECONDS after 3 s of warm-up; prints ops_per_s
 * exceptions SECONDS  the same work throwing ~10^5 exceptions/s out of a callee, caught by its caller
 * hello               prints hello (start-up time is measured from outside)
 * serve N JAR...      loads classes from the jars until N are loaded, then runs the shop service
 * </pre>
 */
public final class AgentWorkloads {
    static volatile long sink;

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "cpu":
                run(Double.parseDouble(args[1]), false);
                break;
            case "exceptions":
                run(Double.parseDouble(args[1]), true);
                break;
            case "hello":
                System.out.println("hello");
                break;
            case "serve":
                serve(Integer.parseInt(args[1]), java.util.Arrays.copyOfRange(args, 2, args.length));
                break;
            default:
                throw new IllegalArgumentException("unknown workload " + args[0]);
        }
    }

    /** A unit of CPU work; with {@code fail}, one call in 96 throws out of the method (about 10^5 per second here). */
    static long work(long seed, boolean fail) {
        long h = seed;
        for (int i = 0; i < 64; i++) {
            h = h * 6364136223846793005L + 1442695040888963407L;
            h ^= h >>> 29;
        }
        if (fail && seed % 96 == 0) {
            throw new IllegalStateException("odd seed");
        }
        return h;
    }

    static void run(double seconds, boolean exceptions) {
        long caught = 0;
        long ops = 0;
        long warmEnd = System.nanoTime() + 3_000_000_000L;
        long seed = 0;
        while (System.nanoTime() < warmEnd) {
            try {
                sink += work(seed++, exceptions);
            } catch (IllegalStateException e) {
                caught++;
            }
        }
        caught = 0;
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        while (System.nanoTime() < end) {
            for (int k = 0; k < 1024; k++) {
                try {
                    sink += work(seed++, exceptions);
                } catch (IllegalStateException e) {
                    caught++;
                }
                ops++;
            }
        }
        double s = (System.nanoTime() - start) / 1e9;
        System.out.printf("ops_per_s=%.0f exceptions_per_s=%.0f%n", ops / s, caught / s);
    }

    static void serve(int wanted, String[] jars) throws Exception {
        URL[] urls = new URL[jars.length];
        for (int i = 0; i < jars.length; i++) {
            urls[i] = new File(jars[i]).toURI().toURL();
        }
        URLClassLoader loader = new URLClassLoader(urls, AgentWorkloads.class.getClassLoader());
        int loaded = 0;
        outer:
        for (String jar : jars) {
            try (JarFile jf = new JarFile(jar)) {
                for (JarEntry e : Collections.list(jf.entries())) {
                    String n = e.getName();
                    if (!n.endsWith(".class") || n.contains("module-info") || n.startsWith("META-INF")) {
                        continue;
                    }
                    try {
                        Class.forName(n.substring(0, n.length() - 6).replace('/', '.'), false, loader);
                        loaded++;
                    } catch (Throwable t) {
                        // Missing dependencies: not loaded, not counted.
                    }
                    if (loaded >= wanted) {
                        break outer;
                    }
                }
            }
        }
        sink = loader.hashCode();
        System.err.println("loaded " + loaded + " extra classes");
        repair.demo.ShopService.main(new String[0]);
    }
}
