package repair.corpus;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * A family playlist for a car radio: the tracks in order, without explicit tracks and without
 * tracks longer than six minutes.
 *
 * <p>Bug: {@code filter(Ljava/util/List;)V} calls Iterator.remove once per rule a track breaks,
 * so an explicit track that is also too long is removed twice: IllegalStateException. Correct:
 * it is dropped once. Degraded: {@code filter} returning at the throw has dropped it but left
 * the tracks after it unfiltered.
 */
public final class PlaylistFilter implements Program {
    private static final int MAX_SECONDS = 360;

    private static final class Track {
        final String title;
        final int seconds;
        final boolean explicit;

        Track(String title, int seconds, boolean explicit) {
            this.title = title;
            this.seconds = seconds;
            this.explicit = explicit;
        }
    }

    public List<String> familyPlaylist(List<Track> tracks) {
        List<Track> kept = new ArrayList<>(tracks);
        filter(kept);
        List<String> titles = new ArrayList<>();
        for (Track track : kept) {
            titles.add(track.title);
        }
        return titles;
    }

    void filter(List<Track> tracks) {
        for (Iterator<Track> it = tracks.iterator(); it.hasNext(); ) {
            Track track = it.next();
            if (track.explicit) {
                it.remove();
            }
            if (track.seconds > MAX_SECONDS) {
                it.remove();
            }
        }
    }

    private static Track clean(String title, int seconds) {
        return new Track(title, seconds, false);
    }

    private static Track explicit(String title, int seconds) {
        return new Track(title, seconds, true);
    }

    @Override
    public String bug() {
        return "filter(List) removes a track that is both explicit and too long twice through its iterator: IllegalStateException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("Intro, Anthem, Rap (explicit), Epic (7 min)",
                        () -> familyPlaylist(List.of(clean("Intro", 90), clean("Anthem", 240),
                                explicit("Rap", 200), clean("Epic", 420))),
                        List.of("Intro", "Anthem")),
                new Check("Lullaby, Waltz", () -> familyPlaylist(List.of(clean("Lullaby", 150), clean("Waltz", 200))),
                        List.of("Lullaby", "Waltz")),
                new Check("Intro, Mixtape (explicit, 8 min), Jingle, Epic (7 min)",
                        () -> familyPlaylist(List.of(clean("Intro", 90), explicit("Mixtape", 500),
                                clean("Jingle", 30), clean("Epic", 420))),
                        List.of("Intro", "Jingle"), List.of("Intro", "Jingle", "Epic")));
    }
}
