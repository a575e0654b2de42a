package repair.corpus;

import java.util.Arrays;
import java.util.List;

/**
 * Counts values into equal-width buckets over [min, max], as a dashboard shows response
 * sizes; values outside the range are not counted.
 *
 * <p>Bug: {@code add([IIII)V} puts a value in bucket {@code (value - min) * buckets / (max -
 * min)}, which for value == max is one past the last bucket: ArrayIndexOutOfBoundsException.
 * Correct: max is counted in the last bucket. Degraded: {@code add} returning early does not
 * count it.
 */
public final class Histogram implements Program {

    /** The counts per bucket, as "[c0, c1, ...]". */
    public String histogram(int min, int max, int buckets, int... values) {
        int[] counts = new int[buckets];
        for (int value : values) {
            add(counts, min, max, value);
        }
        return Arrays.toString(counts);
    }

    void add(int[] counts, int min, int max, int value) {
        if (value < min || value > max) {
            return;
        }
        counts[(value - min) * counts.length / (max - min)]++;
    }

    @Override
    public String bug() {
        return "add(int[], int, int, int) computes bucket index buckets for the maximum value: ArrayIndexOutOfBoundsException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("[0,100] in 4 buckets: 5 30 55 60 99", () -> histogram(0, 100, 4, 5, 30, 55, 60, 99),
                        "[1, 1, 2, 1]"),
                new Check("[0,100] in 4 buckets: -5 0 25 50 75 120", () -> histogram(0, 100, 4, -5, 0, 25, 50, 75, 120),
                        "[1, 1, 1, 1]"),
                new Check("[0,100] in 4 buckets: 10 100 40", () -> histogram(0, 100, 4, 10, 100, 40),
                        "[1, 1, 0, 1]", "[1, 1, 0, 0]"),
                new Check("[0,100] in 4 buckets: 100 100", () -> histogram(0, 100, 4, 100, 100),
                        "[0, 0, 0, 2]", "[0, 0, 0, 0]"));
    }
}
