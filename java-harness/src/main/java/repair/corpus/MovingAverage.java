package repair.corpus;

import java.util.Arrays;
import java.util.List;

/**
 * Moving averages of daily sales over a window of days, for a sales chart: one integer average
 * per full window, none when the series is shorter than the window.
 *
 * <p>Bug: {@code movingAverages([II)[I} sizes its result values.length - window + 1, negative
 * when the series is two or more days shorter than the window: NegativeArraySizeException.
 * Correct: no averages, "[]". Degraded: {@code movingAverages} returning null charts "null".
 */
public final class MovingAverage implements Program {

    public String chart(int window, int... dailySales) {
        return Arrays.toString(movingAverages(dailySales, window));
    }

    int[] movingAverages(int[] values, int window) {
        int[] averages = new int[values.length - window + 1];
        int sum = 0;
        for (int i = 0; i < values.length; i++) {
            sum += values[i];
            if (i >= window) {
                sum -= values[i - window];
            }
            if (i >= window - 1) {
                averages[i - window + 1] = sum / window;
            }
        }
        return averages;
    }

    @Override
    public String bug() {
        return "movingAverages(int[], int) allocates a negative-length array for a series shorter than the window: "
                + "NegativeArraySizeException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("window 3 over 10 20 30 40 50", () -> chart(3, 10, 20, 30, 40, 50), "[20, 30, 40]"),
                new Check("window 2 over 5 7", () -> chart(2, 5, 7), "[6]"),
                new Check("window 3 over 10 20", () -> chart(3, 10, 20), "[]"),
                new Check("window 7 over 10 20 30", () -> chart(7, 10, 20, 30), "[]", "null"));
    }
}
