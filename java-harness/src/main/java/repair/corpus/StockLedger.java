package repair.corpus;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A warehouse's stock ledger: how many units of an item can still be promised to customers,
 * which is the stock on hand less the units open orders have reserved.
 *
 * <p>Bug: {@code available(Ljava/lang/String;)I} unboxes {@code reserved.get(item)}, which is
 * null for an item no open order reserves, and throws NullPointerException. Correct: such an
 * item has all its stock available. Degraded: {@code available} returning 0 says none is.
 */
public final class StockLedger implements Program {
    private final Map<String, Integer> onHand = new HashMap<>();
    private final Map<String, Integer> reserved = new HashMap<>();

    public StockLedger receive(String item, int units) {
        onHand.merge(item, units, Integer::sum);
        return this;
    }

    public StockLedger reserve(String item, int units) {
        reserved.merge(item, units, Integer::sum);
        return this;
    }

    /** Units of item not yet promised; 0 for an item never stocked or already oversold. */
    public int available(String item) {
        int stock = onHand.getOrDefault(item, 0);
        int promised = reserved.get(item);
        return Math.max(0, stock - promised);
    }

    private static StockLedger sample() {
        return new StockLedger()
                .receive("apple", 40).receive("pear", 12).receive("plum", 5)
                .reserve("apple", 15).reserve("plum", 8);
    }

    @Override
    public String bug() {
        return "available(String) unboxes the reserved count of an item no order reserves: NullPointerException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("apple: 40 on hand, 15 reserved", () -> sample().available("apple"), 25),
                new Check("plum: 5 on hand, 8 reserved", () -> sample().available("plum"), 0),
                new Check("pear: 12 on hand, none reserved", () -> sample().available("pear"), 12, 0));
    }
}
