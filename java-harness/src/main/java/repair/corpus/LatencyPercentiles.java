package repair.corpus;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The p-th percentile of request latencies for a service-level report: the sample at index
 * {@code p * n / 100} of the sorted samples, and the largest sample for p = 100.
 *
 * <p>Bug: {@code percentile(Ljava/util/List;I)I} reads index {@code p * n / 100}, which is n for
 * p = 100: IndexOutOfBoundsException. Correct: the largest sample. Degraded: 0.
 */
public final class LatencyPercentiles implements Program {

    public int percentile(List<Integer> samplesMillis, int p) {
        List<Integer> sorted = new ArrayList<>(samplesMillis);
        Collections.sort(sorted);
        return sorted.get(p * sorted.size() / 100);
    }

    private static List<Integer> sample() {
        return List.of(120, 35, 48, 250, 41, 39, 980, 44, 52, 61);
    }

    @Override
    public String bug() {
        return "percentile(List, int) reads index n of n sorted samples for p = 100: IndexOutOfBoundsException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("p50 of 10 samples", () -> percentile(sample(), 50), 52),
                new Check("p75 of 10 samples", () -> percentile(sample(), 75), 120),
                new Check("p99 of 10 samples", () -> percentile(sample(), 99), 980),
                new Check("p100 of 10 samples", () -> percentile(sample(), 100), 980, 0));
    }
}
