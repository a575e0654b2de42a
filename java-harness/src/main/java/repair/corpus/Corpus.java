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
 *
 * <p>{@code java repair.corpus.Corpus ROUNDS PAUSE_MS --checks --wait} (as scripts/bench-heal-corpus.sh
 * and the heal-corpus test run it under the agent): also one line per check and round,
 * {@code check <name> <index> round=<r> <correct|degraded|wrong|threw:<class>>}, a pause between
 * rounds (for the agent's repairs to be applied and judged), and at the end {@code DONE}, then it
 * waits for its standard input to close (so the agent can be asked what it did).
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

    public static void main(String[] args) throws Exception {
        List<String> flags = List.of(args);
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 1;
        long pauseMs = args.length > 1 && !args[1].startsWith("--") ? Long.parseLong(args[1]) : 0;
        boolean eachCheck = flags.contains("--checks");
        List<Program> programs = all();
        for (int round = 1; round <= rounds; round++) {
            for (Program program : programs) {
                System.out.println(runChecks(program, round, eachCheck));
            }
            System.out.flush();
            if (round < rounds && pauseMs > 0) {
                Thread.sleep(pauseMs);
            }
        }
        if (flags.contains("--wait")) {
            System.out.println("DONE");
            System.out.flush();
            while (System.in.read() >= 0) {
                // until the reader closes it
            }
        }
    }

    /** One round of program's checks, as the runner's line (after each check's, if asked). */
    static String runChecks(Program program, int round, boolean eachCheck) {
        List<Check> checks = program.checks();
        int correct = 0;
        int degraded = 0;
        int wrong = 0;
        int threw = 0;
        Set<String> thrown = new LinkedHashSet<>();
        for (int i = 0; i < checks.size(); i++) {
            Check check = checks.get(i);
            String outcome;
            try {
                Object answer = check.run();
                if (Objects.equals(answer, check.expected())) {
                    correct++;
                    outcome = "correct";
                } else if (check.degraded() != null && Objects.equals(answer, check.degraded())) {
                    degraded++;
                    outcome = "degraded";
                } else {
                    wrong++;
                    outcome = "wrong";
                }
            } catch (Throwable t) {
                threw++;
                thrown.add(describe(t));
                outcome = "threw:" + t.getClass().getName();
            }
            if (eachCheck) {
                System.out.println("check " + program.name() + " " + i + " round=" + round + " " + outcome);
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
