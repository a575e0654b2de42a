package repair.corpus;

import java.util.ArrayList;
import java.util.List;

/**
 * A web app's logged-in sessions, in login order: at a given time, who is still logged in
 * after the sessions whose time is up are dropped.
 *
 * <p>Bug: {@code expire(J)V} removes sessions from the list its for-each loop walks, so the
 * loop's next step throws ConcurrentModificationException. Correct: every expired session is
 * dropped. Degraded: {@code expire} returning at the throw has dropped the first expired
 * session only.
 */
public final class SessionStore implements Program {
    private static final class Session {
        final String user;
        final long expiresAt;

        Session(String user, long expiresAt) {
            this.user = user;
            this.expiresAt = expiresAt;
        }
    }

    private final List<Session> sessions = new ArrayList<>();

    public SessionStore login(String user, long expiresAt) {
        sessions.add(new Session(user, expiresAt));
        return this;
    }

    public void expire(long now) {
        for (Session session : sessions) {
            if (session.expiresAt <= now) {
                sessions.remove(session);
            }
        }
    }

    /** The users still logged in at now. */
    public List<String> activeAt(long now) {
        expire(now);
        List<String> users = new ArrayList<>();
        for (Session session : sessions) {
            users.add(session.user);
        }
        return users;
    }

    private static SessionStore sample() {
        return new SessionStore().login("alice", 300).login("bob", 100).login("carol", 400).login("dave", 200);
    }

    @Override
    public String bug() {
        return "expire(long) removes from the list it iterates: ConcurrentModificationException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("at 50, none expired", () -> sample().activeAt(50), List.of("alice", "bob", "carol", "dave")),
                new Check("at 250, bob and dave expired", () -> sample().activeAt(250),
                        List.of("alice", "carol"), List.of("alice", "carol", "dave")),
                new Check("at 350, all but carol expired", () -> sample().activeAt(350),
                        List.of("carol"), List.of("bob", "carol", "dave")),
                new Check("at 500, all expired", () -> sample().activeAt(500),
                        List.of(), List.of("bob", "carol", "dave")));
    }
}
