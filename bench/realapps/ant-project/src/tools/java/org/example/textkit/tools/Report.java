package org.example.textkit.tools;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.example.textkit.Csv;
import org.example.textkit.Json;
import org.example.textkit.WordStats;

/** Reads a CSV file of (section, text) rows and writes a JSON report of word counts per section. */
public final class Report {
    public static void main(String[] args) throws IOException {
        List<List<String>> rows = Csv.parse(Files.readString(Path.of(args[0]), StandardCharsets.UTF_8));
        Map<String, WordStats> sections = new TreeMap<>();
        for (List<String> row : rows.subList(1, rows.size())) {
            sections.computeIfAbsent(row.get(0), k -> new WordStats()).add(row.get(1));
        }
        Map<String, Object> report = new TreeMap<>();
        sections.forEach((k, v) -> {
            // Not Map.of: its iteration order changes from one JVM to the next.
            Map<String, Object> counts = new LinkedHashMap<>();
            counts.put("words", v.total());
            counts.put("distinct", v.distinct());
            report.put(k, counts);
        });
        Files.writeString(Path.of(args[1]), Json.write(report) + "\n", StandardCharsets.UTF_8);
        System.out.println("report: " + sections.size() + " sections written");
    }
}
