package repair.corpus;

import java.util.List;
import java.util.Map;

/**
 * A server's listen address from settings parsed out of a YAML-like file, whose parser gives
 * an Integer for a bare number and a String for a quoted one.
 *
 * <p>Bug: {@code port(Ljava/util/Map;)I} casts the "port" setting to Integer, but a quoted
 * port is a String: ClassCastException. Correct: the quoted number. Degraded: port 0.
 */
public final class ServerSettings implements Program {

    public String listenAddress(Map<String, Object> settings) {
        return host(settings) + ":" + port(settings);
    }

    String host(Map<String, Object> settings) {
        return String.valueOf(settings.getOrDefault("host", "0.0.0.0"));
    }

    int port(Map<String, Object> settings) {
        return (Integer) settings.getOrDefault("port", 8080);
    }

    @Override
    public String bug() {
        return "port(Map) casts the port setting to Integer, a String when the file quotes it: ClassCastException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("host: api.example.org, port: 8443",
                        () -> listenAddress(Map.of("host", "api.example.org", "port", 8443)), "api.example.org:8443"),
                new Check("no settings", () -> listenAddress(Map.of()), "0.0.0.0:8080"),
                new Check("host: api.example.org, port: \"8443\"",
                        () -> listenAddress(Map.of("host", "api.example.org", "port", "8443")),
                        "api.example.org:8443", "api.example.org:0"),
                new Check("port: \"9000\"", () -> listenAddress(Map.of("port", "9000")), "0.0.0.0:9000", "0.0.0.0:0"));
    }
}
