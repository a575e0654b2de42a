package repair.corpus;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Feature flags that inherit: a flag is on when it is switched on and so is every flag it
 * inherits from (its parent, the parent's parent, ...). Parents are free text in the config, so
 * they can form a cycle.
 *
 * <p>Bug: {@code isOn(Ljava/lang/String;)Z} follows parents recursively without remembering
 * the flags it has seen, so a cycle of switched-on flags recurses until StackOverflowError.
 * Correct: such a flag is on (every flag it inherits from is). Degraded: the deepest call
 * returning false makes every call above it false.
 */
public final class FeatureFlags implements Program {
    /** Plain fields, not a record: the recursion then calls no method of this program but isOn. */
    private static final class Flag {
        final boolean switchedOn;
        final String parent;

        Flag(boolean switchedOn, String parent) {
            this.switchedOn = switchedOn;
            this.parent = parent;
        }
    }

    private final Map<String, Flag> flags = new HashMap<>();

    public FeatureFlags define(String name, boolean switchedOn, String parent) {
        flags.put(name, new Flag(switchedOn, parent));
        return this;
    }

    public boolean isOn(String name) {
        Flag flag = flags.get(name);
        if (flag == null || !flag.switchedOn) {
            return false;
        }
        return flag.parent == null || isOn(flag.parent);
    }

    private static FeatureFlags sample() {
        return new FeatureFlags()
                .define("checkout", true, null).define("checkout-v2", true, "checkout")
                .define("search", false, null).define("search-v2", true, "search")
                .define("gamma-a", true, "gamma-b").define("gamma-b", false, "gamma-a")
                .define("beta-a", true, "beta-b").define("beta-b", true, "beta-a");
    }

    @Override
    public String bug() {
        return "isOn(String) recurses along parents forever when they form a cycle of switched-on flags: StackOverflowError";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("checkout-v2, its parent on", () -> sample().isOn("checkout-v2"), true),
                new Check("search-v2, its parent off", () -> sample().isOn("search-v2"), false),
                new Check("an undefined flag", () -> sample().isOn("dark-mode"), false),
                new Check("gamma-a, in a cycle with a flag off", () -> sample().isOn("gamma-a"), false),
                new Check("beta-a, in a cycle of flags on", () -> sample().isOn("beta-a"), true, false));
    }
}
