package repair.corpus;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * A chess club's pairings for a round: players two by two in the order given, "white - black";
 * with an odd count the last player gets a bye.
 *
 * <p>Bug: {@code pairUp(Ljava/util/List;Ljava/util/List;)V} takes two players per step of its
 * loop, so with an odd count the second Iterator.next runs past the end:
 * NoSuchElementException. Correct: "X has a bye". Degraded: {@code pairUp} returning at the
 * throw leaves the bye out.
 */
public final class TournamentPairing implements Program {

    public List<String> round(List<String> players) {
        List<String> boards = new ArrayList<>();
        pairUp(players, boards);
        return boards;
    }

    void pairUp(List<String> players, List<String> boards) {
        Iterator<String> it = players.iterator();
        while (it.hasNext()) {
            String white = it.next();
            String black = it.next();
            boards.add(white + " - " + black);
        }
    }

    @Override
    public String bug() {
        return "pairUp(List, List) takes a second player past the end for an odd count: NoSuchElementException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("ann bob cid dee", () -> round(List.of("ann", "bob", "cid", "dee")),
                        List.of("ann - bob", "cid - dee")),
                new Check("no players", () -> round(List.of()), List.of()),
                new Check("ann bob cid", () -> round(List.of("ann", "bob", "cid")),
                        List.of("ann - bob", "cid has a bye"), List.of("ann - bob")),
                new Check("eve alone", () -> round(List.of("eve")), List.of("eve has a bye"), List.of()));
    }
}
