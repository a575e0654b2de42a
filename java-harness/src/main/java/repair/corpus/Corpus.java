package repair.corpus;

import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * The crash-bug corpus, and a runner for it.
 *
 * <p>{@code java repair.corpus.Corpus [ROUNDS]} runs every check of every program ROUNDS times
 * (default 1) and prints, per program and round:
 * {@code <name> round=<r> checks=<n> correct=<c> degraded=<d> wrong=<w> threw=<t> [<exceptions>]},
 * where the exceptions are the distinct classes the checks threw, a wrapper followed by its
 * cause in parentheses. Without a repair, every program has threw > 0; with a repair that
 * returns defaults at the faulting methods, those become degraded. It exits 0 whatever the
 * programs do.
 */
public final class Corpus {
    private Corpus() {}

    public static List<Program> all() {
        return List.of(
                new StockLedger(), new ConfigTemplate(), new Histogram(), new LatencyPercentiles(),
                new SessionStore(), new FeatureFlags(), new GradeBook(), new RpnCalculator(),
                new ServerSettings(), new CartParser(), new PlaylistFilter(), new Invoicing(),
                new AccessLogStats(), new Leaderboard(), new DurationParser(), new CommandShell(),
                new PriceComparison(), new UserLabels(), new TablePrinter(), new MovingAverage(),
                new MineField(), new LibraryFines(), new TournamentPairing(), new ColumnSum());
    }

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 1;
        List<Program> programs = all();
        for (int round = 1; round <= rounds; round++) {
            for (Program program : programs) {
                System.out.println(runChecks(program, round));
            }
        }
    }

    /** One round of program's checks, as the runner's line. */
    static String runChecks(Program program, int round) {
        List<Check> checks = program.checks();
        int correct = 0;
        int degraded = 0;
        int wrong = 0;
        int threw = 0;
        Set<String> thrown = new LinkedHashSet<>();
        for (Check check : checks) {
            Object answer;
            try {
                answer = check.run();
            } catch (Throwable t) {
                threw++;
                thrown.add(describe(t));
                continue;
            }
            if (Objects.equals(answer, check.expected())) {
                correct++;
            } else if (check.degraded() != null && Objects.equals(answer, check.degraded())) {
                degraded++;
            } else {
                wrong++;
            }
        }
        return program.name() + " round=" + round + " checks=" + checks.size() + " correct=" + correct
                + " degraded=" + degraded + " wrong=" + wrong + " threw=" + threw + " [" + String.join(",", thrown) + "]";
    }

    private static String describe(Throwable t) {
        Throwable cause = t.getCause();
        return cause == null ? t.getClass().getName() : t.getClass().getName() + "(" + describe(cause) + ")";
    }
}
