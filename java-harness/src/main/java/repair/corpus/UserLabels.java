package repair.corpus;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The labels a forum shows next to a user's name: those moderators gave the user, or "member"
 * when they gave none, followed by "staff" for staff.
 *
 * <p>Bug: {@code labelsOf} hands a user without labels the shared immutable default list, and
 * {@code addRoleLabels(Ljava/lang/String;Ljava/util/List;)V} adding "staff" to it throws
 * UnsupportedOperationException. Correct: [member, staff]. Degraded: {@code addRoleLabels}
 * returning early leaves [member].
 */
public final class UserLabels implements Program {
    private final Map<String, List<String>> assigned =
            Map.of("ana", List.of("veteran"), "bo", List.of("helpful", "veteran"));
    private final Set<String> staff = Set.of("bo", "cy");
    private final List<String> defaultLabels = List.of("member");

    public List<String> labelsOf(String user) {
        List<String> labels = assigned.containsKey(user) ? new ArrayList<>(assigned.get(user)) : defaultLabels;
        addRoleLabels(user, labels);
        return labels;
    }

    void addRoleLabels(String user, List<String> labels) {
        if (staff.contains(user)) {
            labels.add("staff");
        }
    }

    @Override
    public String bug() {
        return "addRoleLabels(String, List) adds \"staff\" to the immutable default labels: UnsupportedOperationException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("ana: veteran", () -> labelsOf("ana"), List.of("veteran")),
                new Check("bo: helpful, veteran; staff", () -> labelsOf("bo"), List.of("helpful", "veteran", "staff")),
                new Check("dan: no labels", () -> labelsOf("dan"), List.of("member")),
                new Check("cy: no labels; staff", () -> labelsOf("cy"), List.of("member", "staff"), List.of("member")));
    }
}
