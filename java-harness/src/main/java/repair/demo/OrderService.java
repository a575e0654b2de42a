package repair.demo;

import java.util.ArrayList;
import java.util.List;

/** Orders kept in memory. Fault: a page past the end (IndexOutOfBoundsException). */
public class OrderService {
    private final List<String> orders = new ArrayList<>();

    public synchronized int add(String item, int qty) {
        orders.add(item + "x" + qty);
        return orders.size();
    }

    public synchronized int count() {
        return orders.size();
    }

    public synchronized String page(int page, int size) {
        int from = page * size;
        StringBuilder sb = new StringBuilder(orders.get(from));
        for (int i = from + 1; i < Math.min(from + size, orders.size()); i++) {
            sb.append(',').append(orders.get(i));
        }
        return sb.toString();
    }
}
