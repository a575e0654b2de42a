package repair.demo;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Prices in cents. Fault: an unknown item unboxes a missing price (NullPointerException). */
public class PriceService {
    private final Map<String, Long> prices = new ConcurrentHashMap<>();

    public PriceService() {
        prices.put("apple", 120L);
        prices.put("pear", 95L);
        prices.put("plum", 40L);
    }

    public long price(String item) {
        return prices.get(item).longValue();
    }

    public boolean known(String item) {
        return prices.containsKey(item);
    }
}
