package repair.corpus;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;

/**
 * A stock report as a fixed-width text table: each line is the item name in a 10-character
 * column, a '|', and the quantity. A name longer than its column is cut to fit.
 *
 * <p>Bug: {@code pad(Ljava/lang/String;I)Ljava/lang/String;} appends width - length spaces with
 * String.repeat, a negative count for a name longer than the column: IllegalArgumentException.
 * Correct: the name cut to 10 characters. Degraded: {@code pad} returning null prints "null".
 */
public final class TablePrinter implements Program {
    private static final int NAME_WIDTH = 10;

    public String render(Map<String, Integer> quantities) {
        StringJoiner table = new StringJoiner("\n");
        for (Map.Entry<String, Integer> row : quantities.entrySet()) {
            table.add(pad(row.getKey(), NAME_WIDTH) + "|" + row.getValue());
        }
        return table.toString();
    }

    String pad(String text, int width) {
        return text + " ".repeat(width - text.length());
    }

    /** Rows in the order given. */
    private static Map<String, Integer> rows(String name1, int quantity1, String name2, int quantity2) {
        Map<String, Integer> rows = new LinkedHashMap<>();
        rows.put(name1, quantity1);
        rows.put(name2, quantity2);
        return rows;
    }

    @Override
    public String bug() {
        return "pad(String, int) repeats a space a negative number of times for a name longer than its column: IllegalArgumentException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("apple 12, pear 5", () -> render(rows("apple", 12, "pear", 5)), "apple     |12\npear      |5"),
                new Check("watermelon (10 chars) 3, fig 40", () -> render(rows("watermelon", 3, "fig", 40)),
                        "watermelon|3\nfig       |40"),
                new Check("passionfruit (12 chars) 7, fig 40", () -> render(rows("passionfruit", 7, "fig", 40)),
                        "passionfru|7\nfig       |40", "null|7\nfig       |40"));
    }
}
