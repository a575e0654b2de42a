package org.example.textkit;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

/** Word frequencies of a text, with the most frequent words and a length histogram. */
public final class WordStats {
    private final Map<String, Integer> counts = new TreeMap<>();
    private int total;

    public WordStats add(String text) {
        for (Token t : new Lexer(text).tokens()) {
            if (t.is(Token.Kind.WORD)) {
                counts.merge(t.text().toLowerCase(), 1, Integer::sum);
                total++;
            }
        }
        return this;
    }

    public int total() {
        return total;
    }

    public int distinct() {
        return counts.size();
    }

    public List<Map.Entry<String, Integer>> top(int n) {
        List<Map.Entry<String, Integer>> entries = new ArrayList<>(counts.entrySet());
        entries.sort(Map.Entry.<String, Integer>comparingByValue(Comparator.reverseOrder())
                .thenComparing(Map.Entry.comparingByKey()));
        return entries.subList(0, Math.min(n, entries.size()));
    }

    public Map<Integer, Long> lengths() {
        return counts.keySet().stream()
                .collect(Collectors.groupingBy(String::length, TreeMap::new, Collectors.counting()));
    }
}
