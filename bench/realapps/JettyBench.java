import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.CRC32;
import javax.servlet.ServletException;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.eclipse.jetty.util.thread.QueuedThreadPool;

/**
 * The Jetty workload of scripts/bench-realapps.sh: an embedded Jetty 9 on a free loopback port
 * with a few servlets; this JVM's main thread then sends REQUESTS requests to it, one after the
 * other on keep-alive connections, and prints how many answers of each status came back and a
 * CRC of the successful bodies (all deterministic), then stops the server.
 *
 * Usage: JettyBench [REQUESTS]
 */
public final class JettyBench {
    /** GET /primes?n=N: the primes below N, one line each, and their count. */
    public static final class PrimesServlet extends HttpServlet {
        @Override
        protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            int n = Integer.parseInt(req.getParameter("n"));
            boolean[] composite = new boolean[n];
            StringBuilder sb = new StringBuilder();
            int count = 0;
            for (int i = 2; i < n; i++) {
                if (!composite[i]) {
                    count++;
                    sb.append(i).append('\n');
                    for (long j = (long) i * i; j < n; j += i) {
                        composite[(int) j] = true;
                    }
                }
            }
            sb.append("count ").append(count).append('\n');
            resp.setContentType("text/plain;charset=utf-8");
            resp.getWriter().write(sb.toString());
        }
    }

    /** GET /items?id=K: a JSON document about item K. POST /items: the body's words counted, as JSON. */
    public static final class ItemsServlet extends HttpServlet {
        @Override
        protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException, ServletException {
            String id = req.getParameter("id");
            int k;
            try {
                k = Integer.parseInt(id);
            } catch (NumberFormatException e) {
                resp.sendError(HttpServletResponse.SC_BAD_REQUEST, "id must be a number");
                return;
            }
            if (k % 50 == 49) {
                throw new ServletException("item " + k + " is broken");
            }
            StringBuilder sb = new StringBuilder("{\"id\":").append(k).append(",\"name\":\"item-").append(k)
                    .append("\",\"tags\":[");
            for (int t = 0; t < k % 7; t++) {
                sb.append(t == 0 ? "" : ",").append("\"tag").append((k * 31 + t) % 97).append('"');
            }
            sb.append("],\"price\":").append(String.format(java.util.Locale.ROOT, "%.2f", k * 1.37)).append('}');
            resp.setContentType("application/json");
            resp.getWriter().write(sb.toString());
        }

        @Override
        protected void doPost(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            String body = new String(req.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            Map<String, Integer> counts = new TreeMap<>();
            for (String w : body.split("\\s+")) {
                if (!w.isEmpty()) {
                    counts.merge(w, 1, Integer::sum);
                }
            }
            resp.setContentType("application/json");
            resp.getWriter().write(counts.toString());
        }
    }

    public static void main(String[] args) throws Exception {
        int requests = args.length > 0 ? Integer.parseInt(args[0]) : 12000;
        QueuedThreadPool pool = new QueuedThreadPool(16, 4);
        pool.setName("bench-jetty");
        Server server = new Server(pool);
        ServerConnector connector = new ServerConnector(server, 1, 1);
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        server.addConnector(connector);
        ServletContextHandler context = new ServletContextHandler();
        context.setContextPath("/");
        context.addServlet(new ServletHolder(new PrimesServlet()), "/primes");
        context.addServlet(new ServletHolder(new ItemsServlet()), "/items");
        server.setHandler(context);
        server.start();
        String base = "http://127.0.0.1:" + connector.getLocalPort();

        Map<Integer, Integer> statuses = new TreeMap<>();
        CRC32 crc = new CRC32();
        long bytes = 0;
        String words = "alpha beta gamma beta delta alpha alpha epsilon ".repeat(40);
        for (int i = 0; i < requests; i++) {
            HttpURLConnection c;
            switch (i % 5) {
                case 0 -> c = get(base + "/primes?n=" + (2000 + (i % 17) * 500));
                case 1, 2 -> c = get(base + "/items?id=" + (i % 211));
                case 3 -> {
                    c = (HttpURLConnection) URI.create(base + "/items").toURL().openConnection();
                    c.setRequestMethod("POST");
                    c.setDoOutput(true);
                    try (OutputStream out = c.getOutputStream()) {
                        out.write((words + i % 13).getBytes(StandardCharsets.UTF_8));
                    }
                }
                default -> c = get(base + (i % 10 == 4 ? "/items?id=x" + i : "/nothing-here/" + i));
            }
            int status = c.getResponseCode();
            statuses.merge(status, 1, Integer::sum);
            byte[] body = readAll(status < 400 ? c.getInputStream() : c.getErrorStream());
            if (status == 200) {
                crc.update(body);
                bytes += body.length;
            }
        }
        server.stop();
        server.join();
        System.out.println("requests: " + requests);
        System.out.println("statuses: " + statuses);
        System.out.println("ok bodies: " + bytes + " bytes, crc " + Long.toHexString(crc.getValue()));
    }

    private static HttpURLConnection get(String url) throws IOException {
        return (HttpURLConnection) URI.create(url).toURL().openConnection();
    }

    private static byte[] readAll(InputStream in) throws IOException {
        if (in == null) {
            return new byte[0];
        }
        try (in) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            in.transferTo(out);
            return out.toByteArray();
        }
    }
}
