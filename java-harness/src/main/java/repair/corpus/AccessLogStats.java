package repair.corpus;

import java.util.List;

/**
 * The mean response time of an access log, whose lines read "METHOD PATH STATUS MILLIS",
 * rounded to whole milliseconds; 0 for a log without timed requests.
 *
 * <p>Bug: the lambda in {@code averageMillis}, {@code lambda$averageMillis$0(Ljava/lang/String;)I},
 * reads the fourth field of every line, but health checks are logged without a time:
 * ArrayIndexOutOfBoundsException. Correct: such lines do not count. Degraded: the lambda
 * returning 0 counts them as 0 ms.
 */
public final class AccessLogStats implements Program {

    public int averageMillis(List<String> lines) {
        double mean = lines.stream()
                .mapToInt(line -> Integer.parseInt(line.split(" ")[3]))
                .average()
                .orElse(0);
        return (int) Math.round(mean);
    }

    @Override
    public String bug() {
        return "the lambda in averageMillis(List) reads a fourth field that health-check lines lack: ArrayIndexOutOfBoundsException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("three timed requests: 35 45 130 ms",
                        () -> averageMillis(List.of("GET /home 200 35", "GET /cart 200 45", "POST /pay 201 130")), 70),
                new Check("an empty log", () -> averageMillis(List.of()), 0),
                new Check("35 ms, an untimed health check, 45 ms",
                        () -> averageMillis(List.of("GET /home 200 35", "GET /health 200", "GET /cart 200 45")), 40, 27),
                new Check("10 ms, two untimed health checks",
                        () -> averageMillis(List.of("GET /health 200", "GET /a 200 10", "GET /health 200")), 10, 3));
    }
}
