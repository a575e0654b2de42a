package repair.demo;

/** Fallbacks a policy can name. {@code brokenPrice} is itself broken: a repair that must not hold. */
public final class Fallbacks {
    private Fallbacks() {}

    /** Meant to price an unknown item from a second source, which is down. */
    public static long brokenPrice(String item) {
        throw new IllegalStateException("the second price source is down (item " + item + ")");
    }
}
