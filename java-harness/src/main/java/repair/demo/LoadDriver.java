package repair.demo;

import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Sends requests to the demo service and counts answers per endpoint.
 *
 * <pre>java repair.demo.LoadDriver BASE_URL REQUESTS THREADS PATH...</pre>
 *
 * Each thread cycles through the PATHs; prints {@code PATH ok=N errors=N} per path.
 */
public final class LoadDriver {
    public static void main(String[] args) throws Exception {
        String base = args[0];
        int requests = Integer.parseInt(args[1]);
        int threads = Integer.parseInt(args[2]);
        String[] paths = java.util.Arrays.copyOfRange(args, 3, args.length);
        Map<String, AtomicLong[]> counts = new TreeMap<>();
        for (String p : paths) {
            counts.put(p, new AtomicLong[] {new AtomicLong(), new AtomicLong()});
        }
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        AtomicLong next = new AtomicLong();
        for (int t = 0; t < threads; t++) {
            pool.submit(() -> {
                long i;
                while ((i = next.getAndIncrement()) < requests) {
                    String p = paths[(int) (i % paths.length)];
                    int code = request(base + p, p.startsWith("/order?") ? "POST" : "GET");
                    counts.get(p)[code == 200 ? 0 : 1].incrementAndGet();
                }
                return null;
            });
        }
        pool.shutdown();
        if (!pool.awaitTermination(120, TimeUnit.SECONDS)) {
            pool.shutdownNow();
            System.err.println("load driver timed out");
        }
        for (Map.Entry<String, AtomicLong[]> e : counts.entrySet()) {
            System.out.println(e.getKey() + " ok=" + e.getValue()[0] + " errors=" + e.getValue()[1]);
        }
    }

    static int request(String url, String method) {
        try {
            HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
            c.setRequestMethod(method);
            c.setConnectTimeout(5000);
            c.setReadTimeout(10000);
            int code = c.getResponseCode();
            try (InputStream in = code == 200 ? c.getInputStream() : c.getErrorStream()) {
                if (in != null) {
                    in.readAllBytes();
                }
            }
            return code;
        } catch (IOException e) {
            return -1;
        }
    }
}
