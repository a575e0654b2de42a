package repair.corpus;

import java.util.List;

/**
 * A small program with one crash bug, and inputs to run it on: some it answers right, some
 * make the bug throw.
 */
public interface Program {
    /** A short name, unique in the corpus. */
    default String name() {
        return getClass().getSimpleName();
    }

    /** One sentence: the crash bug and the method it throws in. */
    String bug();

    /** Inputs that work and inputs that hit the bug; each runs on fresh state. */
    List<Check> checks();
}
