package repair.corpus;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A course's grade book: a student's report line with the integer average of their scores.
 *
 * <p>Bug: {@code average(Ljava/util/List;)I} divides the sum by the number of scores, zero for a
 * student enrolled without scores yet: ArithmeticException. Correct: the line says
 * "no scores yet". Degraded: {@code average} returning 0 reports an average of 0.
 */
public final class GradeBook implements Program {
    private final Map<String, List<Integer>> scoresByStudent = new HashMap<>();

    public GradeBook enrol(String student, Integer... scores) {
        scoresByStudent.computeIfAbsent(student, s -> new ArrayList<>()).addAll(List.of(scores));
        return this;
    }

    public String reportLine(String student) {
        List<Integer> scores = scoresByStudent.getOrDefault(student, List.of());
        return student + ": " + average(scores);
    }

    int average(List<Integer> scores) {
        int sum = 0;
        for (int score : scores) {
            sum += score;
        }
        return sum / scores.size();
    }

    private static GradeBook sample() {
        return new GradeBook().enrol("alice", 90, 85, 78).enrol("bob", 70, 65).enrol("dave");
    }

    @Override
    public String bug() {
        return "average(List) divides by the number of scores, zero for a student without scores: ArithmeticException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("alice: 90 85 78", () -> sample().reportLine("alice"), "alice: 84"),
                new Check("bob: 70 65", () -> sample().reportLine("bob"), "bob: 67"),
                new Check("dave: enrolled, no scores", () -> sample().reportLine("dave"), "dave: no scores yet", "dave: 0"));
    }
}
