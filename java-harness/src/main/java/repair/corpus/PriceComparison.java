package repair.corpus;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * A price-comparison backend: each product's cheapest offer across suppliers, in cents, looked
 * up by one task per product on a thread pool. A product no supplier offers is left out.
 *
 * <p>Bug: {@code cheapest(Ljava/lang/String;)I} takes {@code min().getAsInt()} of the offers,
 * empty for a product no supplier offers: NoSuchElementException, which reaches
 * {@code bestPrices} wrapped in ExecutionException. Correct: the product is left out.
 * Degraded: {@code cheapest} returning 0 lists it at price 0.
 */
public final class PriceComparison implements Program {
    private final Map<String, Map<String, Integer>> offersBySupplier = Map.of(
            "north", Map.of("bread", 230, "milk", 99),
            "south", Map.of("bread", 210, "eggs", 320),
            "east", Map.of("milk", 105, "eggs", 299));

    /** The cheapest price of each product, as "{product=cents, ...}" sorted by product. */
    public String bestPrices(List<String> products) throws InterruptedException, ExecutionException {
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Map<String, Future<Integer>> pending = new LinkedHashMap<>();
            for (String product : products) {
                pending.put(product, pool.submit(() -> cheapest(product)));
            }
            Map<String, Integer> best = new TreeMap<>();
            for (Map.Entry<String, Future<Integer>> entry : pending.entrySet()) {
                best.put(entry.getKey(), entry.getValue().get());
            }
            return best.toString();
        } finally {
            pool.shutdown();
        }
    }

    int cheapest(String product) {
        return offersBySupplier.values().stream()
                .filter(offers -> offers.containsKey(product))
                .mapToInt(offers -> offers.get(product))
                .min()
                .getAsInt();
    }

    @Override
    public String bug() {
        return "cheapest(String), run on a thread pool, takes the minimum of no offers: "
                + "NoSuchElementException wrapped in ExecutionException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("bread, milk", Check.throwing(() -> bestPrices(List.of("bread", "milk"))), "{bread=210, milk=99}"),
                new Check("eggs", Check.throwing(() -> bestPrices(List.of("eggs"))), "{eggs=299}"),
                new Check("bread, saffron (no offer), milk", Check.throwing(() -> bestPrices(List.of("bread", "saffron", "milk"))),
                        "{bread=210, milk=99}", "{bread=210, milk=99, saffron=0}"));
    }
}
