package repair.corpus;

import java.util.List;

/**
 * A timesheet's total: durations written "1h30m", "2h" or "45m", added up and shown as
 * "XhYm".
 *
 * <p>Bug: the overload {@code seconds(Ljava/lang/String;)I} takes the hours from before the 'h'
 * without checking there is one, so "45m" makes it call substring(0, -1):
 * StringIndexOutOfBoundsException. (The other overload, {@code seconds(II)I}, is right.)
 * Correct: 45 minutes. Degraded: {@code seconds(String)} returning 0 leaves the entry out of the
 * total.
 */
public final class DurationParser implements Program {

    public String total(List<String> entries) {
        int seconds = 0;
        for (String entry : entries) {
            seconds += seconds(entry);
        }
        return seconds / 3600 + "h" + seconds % 3600 / 60 + "m";
    }

    int seconds(String text) {
        int h = text.indexOf('h');
        int hours = Integer.parseInt(text.substring(0, h));
        String rest = text.substring(h + 1);
        int minutes = rest.isEmpty() ? 0 : Integer.parseInt(rest.substring(0, rest.length() - 1));
        return seconds(hours, minutes);
    }

    int seconds(int hours, int minutes) {
        return hours * 3600 + minutes * 60;
    }

    @Override
    public String bug() {
        return "the overload seconds(String) cuts the hours before an 'h' that \"45m\" lacks: StringIndexOutOfBoundsException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("1h30m, 2h, 0h15m", () -> total(List.of("1h30m", "2h", "0h15m")), "3h45m"),
                new Check("8h", () -> total(List.of("8h")), "8h0m"),
                new Check("1h30m, 45m", () -> total(List.of("1h30m", "45m")), "2h15m", "1h30m"),
                new Check("20m, 40m", () -> total(List.of("20m", "40m")), "1h0m", "0h0m"));
    }
}
