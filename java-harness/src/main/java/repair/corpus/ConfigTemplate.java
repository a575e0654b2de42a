package repair.corpus;

import java.util.List;
import java.util.Map;

/**
 * Expands {@code ${name}} placeholders in a configuration template from a table of settings
 * read from a hand-edited file, so values are trimmed.
 *
 * <p>Bug: {@code lookup(Ljava/lang/String;)Ljava/lang/String;} trims {@code settings.get(name)},
 * null for a name the table lacks, and throws NullPointerException. Correct: an unknown
 * placeholder is left as written. Degraded: {@code lookup} returning null expands it to "null".
 */
public final class ConfigTemplate implements Program {
    private final Map<String, String> settings =
            Map.of("db.host", " db1.internal ", "db.port", "5432", "db.name", "shop ");

    public String expand(String template) {
        StringBuilder out = new StringBuilder();
        int at = 0;
        while (true) {
            int open = template.indexOf("${", at);
            int close = open < 0 ? -1 : template.indexOf('}', open);
            if (close < 0) {
                return out.append(template, at, template.length()).toString();
            }
            out.append(template, at, open).append(lookup(template.substring(open + 2, close)));
            at = close + 1;
        }
    }

    String lookup(String name) {
        return settings.get(name).trim();
    }

    @Override
    public String bug() {
        return "lookup(String) trims the value of a setting the table lacks: NullPointerException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("a JDBC URL from host, port and name",
                        () -> expand("jdbc:postgresql://${db.host}:${db.port}/${db.name}"),
                        "jdbc:postgresql://db1.internal:5432/shop"),
                new Check("text without placeholders", () -> expand("pool.size=8"), "pool.size=8"),
                new Check("an undefined ${db.user}", () -> expand("${db.user}@${db.host}"),
                        "${db.user}@db1.internal", "null@db1.internal"));
    }
}
