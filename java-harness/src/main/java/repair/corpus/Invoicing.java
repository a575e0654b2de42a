package repair.corpus;

import java.util.List;

/**
 * A shop's invoices: the sum of the order lines less the customer's loyalty discount, in the
 * currency of the customer's country.
 *
 * <p>Bug: the constructor {@code Invoicing$Invoice.<init>(Lrepair/corpus/Invoicing$Customer;Ljava/util/List;)V}
 * reads {@code customer.loyalty.discountPercent}, but the loyalty field is null for a customer
 * outside the loyalty scheme: NullPointerException. Correct: no discount. Degraded: a
 * constructor returning at the throw leaves the discount 0 and the currency, set after it, null.
 */
public final class Invoicing implements Program {
    static final class Loyalty {
        final int discountPercent;

        Loyalty(int discountPercent) {
            this.discountPercent = discountPercent;
        }
    }

    static final class Customer {
        final String name;
        final String country;
        final Loyalty loyalty;

        Customer(String name, String country, Loyalty loyalty) {
            this.name = name;
            this.country = country;
            this.loyalty = loyalty;
        }
    }

    static final class Invoice {
        final Customer customer;
        final int subtotalCents;
        final int discountPercent;
        final String currency;

        Invoice(Customer customer, List<Integer> lineCents) {
            this.customer = customer;
            this.subtotalCents = lineCents.stream().mapToInt(Integer::intValue).sum();
            this.discountPercent = customer.loyalty.discountPercent;
            this.currency = customer.country.equals("CH") ? "CHF" : "EUR";
        }

        String summary() {
            return customer.name + ": " + subtotalCents * (100 - discountPercent) / 100 + " " + currency;
        }
    }

    public String invoice(Customer customer, List<Integer> lineCents) {
        return new Invoice(customer, lineCents).summary();
    }

    @Override
    public String bug() {
        return "the Invoice constructor reads the loyalty discount of a customer whose loyalty field is null: NullPointerException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("Anna, DE, 10% loyalty: 2000 + 2500",
                        () -> invoice(new Customer("Anna", "DE", new Loyalty(10)), List.of(2000, 2500)), "Anna: 4050 EUR"),
                new Check("Beat, CH, 5% loyalty: 10000",
                        () -> invoice(new Customer("Beat", "CH", new Loyalty(5)), List.of(10000)), "Beat: 9500 CHF"),
                new Check("Carl, FR, no loyalty: 1999 + 1",
                        () -> invoice(new Customer("Carl", "FR", null), List.of(1999, 1)), "Carl: 2000 EUR", "Carl: 2000 null"),
                new Check("Dora, CH, no loyalty: 500",
                        () -> invoice(new Customer("Dora", "CH", null), List.of(500)), "Dora: 500 CHF", "Dora: 500 null"));
    }
}
