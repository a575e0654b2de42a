package repair.corpus;

import java.util.concurrent.Callable;
import java.util.function.Supplier;

/**
 * One input of a {@link Program}: what it is, how to run the program's entry on it, the answer
 * the fixed program gives, and the degraded answer: what the program answers under a repair
 * that catches the bug's exception in the faulting method and returns its type's default (0,
 * false, null, or nothing for void).
 */
public final class Check {
    private final String input;
    private final Supplier<Object> entry;
    private final Object expected;
    private final Object degraded;

    /** An input the program answers right as it is: no degraded answer. */
    public Check(String input, Supplier<Object> entry, Object expected) {
        this(input, entry, expected, null);
    }

    /** {@code degraded}: the answer after a default-returning repair; null when there is none. */
    public Check(String input, Supplier<Object> entry, Object expected, Object degraded) {
        this.input = input;
        this.entry = entry;
        this.expected = expected;
        this.degraded = degraded;
    }

    public String input() {
        return input;
    }

    /** Runs the program's entry on this input; whatever it throws comes out as it is. */
    public Object run() {
        return entry.get();
    }

    public Object expected() {
        return expected;
    }

    /** Null when the check has no documented degraded answer. */
    public Object degraded() {
        return degraded;
    }

    /**
     * An entry that declares checked exceptions as a Supplier that throws them unwrapped, so a
     * runner sees the InvocationTargetException or ExecutionException the program itself threw.
     */
    public static Supplier<Object> throwing(Callable<?> entry) {
        return () -> {
            try {
                return entry.call();
            } catch (Exception e) {
                throw Check.<RuntimeException>unchecked(e);
            }
        };
    }

    /** Rethrows e; the cast is erased, so the compiler's checked-exception rule does not apply. */
    @SuppressWarnings("unchecked")
    private static <E extends Throwable> E unchecked(Throwable e) throws E {
        throw (E) e;
    }
}
