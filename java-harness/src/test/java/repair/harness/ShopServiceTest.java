package repair.harness;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;
import repair.demo.ShopService;

public class ShopServiceTest {
    private HttpServer server;
    private String base;

    @Before
    public void start() throws Exception {
        server = new ShopService().start(0);
        base = "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @After
    public void stop() {
        server.stop(0);
        ((java.util.concurrent.ExecutorService) server.getExecutor()).shutdownNow();
    }

    @Test
    public void servesAndFaultsAsDesigned() throws Exception {
        assertEquals("200 120\n", call("GET", "/price?item=apple"));
        assertEquals("500 java.lang.NullPointerException\n", call("GET", "/price?item=durian"));
        assertEquals("200 3\n", call("GET", "/ratio?a=7&b=2"));
        assertEquals("500 java.lang.ArithmeticException\n", call("GET", "/ratio?a=7&b=0"));
        assertEquals("200 orders=1\n", call("POST", "/order?item=apple&qty=2"));
        assertEquals("200 orders=2\n", call("POST", "/order?item=pear&qty=1"));
        assertEquals("200 applex2,pearx1\n", call("GET", "/orders?page=0&size=5"));
        assertEquals("500 java.lang.IndexOutOfBoundsException\n", call("GET", "/orders?page=3&size=5"));
        String stats = call("GET", "/stats");
        assertTrue(stats, stats.contains("requests=9\n") && stats.contains("errors=3\n") && stats.contains("orders=2\n"));
    }

    private String call(String method, String path) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL(base + path).openConnection();
        c.setRequestMethod(method);
        c.setConnectTimeout(5000);
        c.setReadTimeout(5000);
        int code = c.getResponseCode();
        try (InputStream in = code == 200 ? c.getInputStream() : c.getErrorStream()) {
            return code + " " + new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
