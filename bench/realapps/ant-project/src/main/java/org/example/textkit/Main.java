package org.example.textkit;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/** The textkit demo: evaluates the bundled expressions and summarizes the bundled text. */
public final class Main {
    public static void main(String[] args) throws IOException {
        Properties p = new Properties();
        try (InputStream in = Main.class.getResourceAsStream("/textkit.properties")) {
            p.load(in);
        }
        System.out.println("textkit " + p.getProperty("version") + " (" + p.getProperty("name") + ")");
        Map<String, Double> env = new LinkedHashMap<>();
        env.put("x", 3.0);
        env.put("y", 0.5);
        String[] exprs = p.getProperty("expressions").split(";");
        int failed = 0;
        for (String e : exprs) {
            try {
                System.out.printf("%s = %.4f%n", e.trim(), Expr.parse(e).eval(env));
            } catch (RuntimeException ex) {
                failed++;
                System.out.println(e.trim() + " fails: " + ex.getMessage());
            }
        }
        String text = new String(Main.class.getResourceAsStream("/sample.txt").readAllBytes(), StandardCharsets.UTF_8);
        WordStats ws = new WordStats().add(text);
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("words", ws.total());
        summary.put("distinct", ws.distinct());
        List<String> top = new ArrayList<>();
        ws.top(5).forEach(en -> top.add(en.getKey() + "=" + en.getValue()));
        summary.put("top", top);
        summary.put("lengths", ws.lengths());
        summary.put("failedExpressions", failed);
        System.out.println(Json.write(summary));
        List<List<String>> rows = Csv.parse(Csv.format(List.of(List.of("a", "b,c", "say \"hi\""), List.of("1", "2", "3"))));
        System.out.println("csv round trip: " + rows);
    }
}
