package repair.corpus;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * A game's leaderboard: the top n players by best score, ties by name. Players who signed up
 * but never finished a game have no score yet and rank last, by name.
 *
 * <p>Bug: the anonymous comparator in {@code top}, {@code
 * Leaderboard$1.compare(Lrepair/corpus/Leaderboard$Player;Lrepair/corpus/Leaderboard$Player;)I},
 * unboxes both scores, null for a player without one: NullPointerException. Correct: those
 * players last. Degraded: {@code compare} returning 0 ranks a player without a score level with
 * everyone, so the stable sort leaves the list as it came.
 */
public final class Leaderboard implements Program {
    static final class Player {
        final String name;
        final Integer bestScore;

        Player(String name, Integer bestScore) {
            this.name = name;
            this.bestScore = bestScore;
        }
    }

    public List<String> top(List<Player> players, int n) {
        List<Player> ranked = new ArrayList<>(players);
        ranked.sort(new Comparator<Player>() {
            @Override
            public int compare(Player a, Player b) {
                int byScore = Integer.compare(b.bestScore, a.bestScore);
                return byScore != 0 ? byScore : a.name.compareTo(b.name);
            }
        });
        List<String> names = new ArrayList<>();
        for (Player player : ranked.subList(0, Math.min(n, ranked.size()))) {
            names.add(player.name);
        }
        return names;
    }

    @Override
    public String bug() {
        return "the anonymous comparator in top(List, int) unboxes the null score of a player without one: NullPointerException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("top 3 of ann 120, bob 340, cid 340, dee 90",
                        () -> top(List.of(new Player("ann", 120), new Player("bob", 340), new Player("cid", 340),
                                new Player("dee", 90)), 3),
                        List.of("bob", "cid", "ann")),
                new Check("top 5 of ann 120, bob 340",
                        () -> top(List.of(new Player("ann", 120), new Player("bob", 340)), 5), List.of("bob", "ann")),
                new Check("top 2 of ann 120, eve (no score), bob 340",
                        () -> top(List.of(new Player("ann", 120), new Player("eve", null), new Player("bob", 340)), 2),
                        List.of("bob", "ann"), List.of("ann", "eve")),
                new Check("top 3 of fay (no score), ann 120, eve (no score)",
                        () -> top(List.of(new Player("fay", null), new Player("ann", 120), new Player("eve", null)), 3),
                        List.of("ann", "eve", "fay"), List.of("fay", "ann", "eve")));
    }
}
