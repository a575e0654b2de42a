package repair.demo;

/** Fault: integer division by a zero divisor (ArithmeticException). */
public class StatsService {
    public long ratio(long a, long b) {
        return a / b;
    }
}
