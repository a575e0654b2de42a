package repair.corpus;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads a shopping cart a user typed as "item=quantity" pairs separated by ';' and counts the
 * units of each item.
 *
 * <p>Bug: {@code quantity(Ljava/lang/String;)I} parses the text after '=' as typed, and
 * Integer.parseInt rejects the spaces users put around numbers: NumberFormatException.
 * Correct: the number without its spaces. Degraded: 0 units of that item.
 */
public final class CartParser implements Program {

    /** Units per item, as "{item=units, ...}" sorted by item. */
    public String parseCart(String cartText) {
        Map<String, Integer> units = new TreeMap<>();
        for (String pair : cartText.split(";")) {
            if (pair.isBlank()) {
                continue;
            }
            int equals = pair.indexOf('=');
            units.merge(pair.substring(0, equals).trim(), quantity(pair.substring(equals + 1)), Integer::sum);
        }
        return units.toString();
    }

    int quantity(String text) {
        return Integer.parseInt(text);
    }

    @Override
    public String bug() {
        return "quantity(String) parses a quantity with the spaces the user typed: NumberFormatException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("apple=3;pear=2;apple=1", () -> parseCart("apple=3;pear=2;apple=1"), "{apple=4, pear=2}"),
                new Check("milk=1;", () -> parseCart("milk=1;"), "{milk=1}"),
                new Check("apple=3; pear= 2", () -> parseCart("apple=3; pear= 2"), "{apple=3, pear=2}", "{apple=3, pear=0}"),
                new Check("eggs=12 ;bread=1", () -> parseCart("eggs=12 ;bread=1"), "{bread=1, eggs=12}", "{bread=1, eggs=0}"));
    }
}
