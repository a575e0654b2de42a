package repair.corpus;

import java.time.LocalDate;
import java.util.List;

/**
 * A library's late fee: 25 cents a day for a book returned after its due date. Staff type the
 * dates as year-month-day, with or without leading zeros.
 *
 * <p>Bug: {@code epochDay(Ljava/lang/String;)J} parses with LocalDate.parse, which wants
 * two-digit months and days, so "2024-3-14" throws DateTimeParseException. Correct: one or two
 * digits are read alike. Degraded: {@code epochDay} returning 0 reads the date as 1970-01-01,
 * so a book returned that day is early (no fee) and one due that day is decades late.
 */
public final class LibraryFines implements Program {
    private static final int CENTS_PER_DAY = 25;

    public int feeCents(String due, String returned) {
        long daysLate = epochDay(returned) - epochDay(due);
        return (int) Math.max(0, daysLate) * CENTS_PER_DAY;
    }

    long epochDay(String date) {
        return LocalDate.parse(date).toEpochDay();
    }

    @Override
    public String bug() {
        return "epochDay(String) parses a date typed without leading zeros with LocalDate.parse: DateTimeParseException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("due 2024-03-10, returned 2024-03-14", () -> feeCents("2024-03-10", "2024-03-14"), 100),
                new Check("due 2024-03-10, returned 2024-03-08", () -> feeCents("2024-03-10", "2024-03-08"), 0),
                new Check("due 2024-03-10, returned 2024-3-14", () -> feeCents("2024-03-10", "2024-3-14"), 100, 0),
                new Check("due 2024-2-28, returned 2024-03-01 (leap year)", () -> feeCents("2024-2-28", "2024-03-01"),
                        50, 494575));
    }
}
