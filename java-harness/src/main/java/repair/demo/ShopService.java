package repair.demo;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The demo service: HTTP on loopback, state in memory, three real faults.
 *
 * <pre>
 * GET  /price?item=KEY         PriceService.price   NullPointerException on an unknown key
 * GET  /ratio?a=A&amp;b=B          StatsService.ratio   ArithmeticException when b=0
 * GET  /orders?page=P&amp;size=S   OrderService.page    IndexOutOfBoundsException past the end
 * POST /order?item=KEY&amp;qty=N    adds an order
 * GET  /stats                  requests, errors, orders, started (key=value lines)
 * </pre>
 *
 * Prints {@code LISTENING port=N} once it serves. A fault answers 500 with the exception class.
 */
public final class ShopService {
    final PriceService prices = new PriceService();
    final StatsService stats = new StatsService();
    final OrderService orders = new OrderService();
    final AtomicLong requests = new AtomicLong();
    final AtomicLong errors = new AtomicLong();
    final long started = System.currentTimeMillis();

    public static void main(String[] args) throws IOException {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        HttpServer server = new ShopService().start(port);
        System.out.println("LISTENING port=" + server.getAddress().getPort());
        System.out.flush();
    }

    public HttpServer start(int port) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 64);
        server.setExecutor(Executors.newFixedThreadPool(8, r -> {
            Thread t = new Thread(r, "shop-http");
            t.setDaemon(false);
            return t;
        }));
        server.createContext("/", this::handle);
        server.start();
        return server;
    }

    private void handle(HttpExchange ex) throws IOException {
        requests.incrementAndGet();
        Map<String, String> q = query(ex.getRequestURI());
        int status = 200;
        String body;
        try {
            body = route(ex.getRequestMethod(), ex.getRequestURI().getPath(), q);
        } catch (RuntimeException e) {
            errors.incrementAndGet();
            status = 500;
            body = e.getClass().getName() + "\n";
        }
        if (body == null) {
            status = 404;
            body = "not found\n";
        }
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    String route(String method, String path, Map<String, String> q) {
        switch (path) {
            case "/price":
                return prices.price(q.get("item")) + "\n";
            case "/ratio":
                return stats.ratio(Long.parseLong(q.get("a")), Long.parseLong(q.get("b"))) + "\n";
            case "/orders":
                return orders.page(Integer.parseInt(q.get("page")), Integer.parseInt(q.get("size"))) + "\n";
            case "/order":
                return "orders=" + orders.add(q.get("item"), Integer.parseInt(q.getOrDefault("qty", "1"))) + "\n";
            case "/stats":
                return "requests=" + requests.get() + "\nerrors=" + errors.get() + "\norders=" + orders.count()
                        + "\nstarted=" + started + "\n";
            default:
                return null;
        }
    }

    static Map<String, String> query(URI uri) {
        Map<String, String> q = new HashMap<>();
        String raw = uri.getRawQuery();
        if (raw != null) {
            for (String kv : raw.split("&")) {
                int i = kv.indexOf('=');
                if (i > 0) {
                    q.put(kv.substring(0, i), kv.substring(i + 1));
                }
            }
        }
        return q;
    }
}
