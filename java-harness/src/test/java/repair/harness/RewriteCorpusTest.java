package repair.harness;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.Test;

/**
 * {@code repairctl rewrite --guard-all} and {@code --probe-all} over every distinct jar in
 * /usr/share/java, each output run through HotSpot's verifier: no class may fail verification
 * unless its original fails the same way.
 */
public class RewriteCorpusTest {
    static File repairctl() {
        File bin = new File(System.getProperty("repair.bin", "../target/release"), "repairctl");
        assertTrue("repairctl not built: " + bin + " (run scripts/test.sh)", bin.canExecute());
        return bin;
    }

    static List<File> corpus() throws IOException {
        TreeSet<File> jars = new TreeSet<>();
        File[] files = new File("/usr/share/java").listFiles((d, n) -> n.endsWith(".jar"));
        for (File f : files) {
            jars.add(f.getCanonicalFile());
        }
        return new ArrayList<>(jars);
    }

    static void rewrite(String mode, File in, File out) throws Exception {
        Process p = new ProcessBuilder(repairctl().getPath(), "rewrite", mode, in.getPath(), "--out", out.getPath())
                .redirectErrorStream(true)
                .start();
        String log = new String(p.getInputStream().readAllBytes());
        assertTrue("repairctl timed out on " + in, p.waitFor(300, TimeUnit.SECONDS));
        assertEquals("repairctl " + mode + " " + in + ": " + log, 0, p.exitValue());
    }

    @Test
    public void guardAllAndProbeAllOutputsVerify() throws Exception {
        List<File> jars = corpus();
        File dir = Files.createTempDirectory("rewrite-corpus").toFile();
        Map<String, String> failures = new TreeMap<>();
        int ok = 0;
        int baselineErrors = 0;
        for (File jar : jars) {
            List<File> deps = new ArrayList<>(jars);
            deps.remove(jar);
            VerifyJar.Result baseline = VerifyJar.verify(jar, deps);
            baselineErrors += baseline.verifyErrors.size();
            for (String mode : new String[] {"--guard-all", "--probe-all"}) {
                File out = new File(dir, mode.substring(2) + "-" + jar.getName());
                rewrite(mode, jar, out);
                VerifyJar.Result r = VerifyJar.verify(out, deps);
                ok += r.ok;
                for (Map.Entry<String, String> e : VerifyJar.newErrors(r, baseline).entrySet()) {
                    failures.put(mode + " " + jar.getName() + " " + e.getKey(), e.getValue());
                }
                out.delete();
            }
        }
        System.out.println("corpus: jars=" + jars.size() + " verified_ok=" + ok + " verify_errors=" + failures.size()
                + " baseline_verify_errors=" + baselineErrors);
        failures.entrySet().stream().limit(10).forEach(e -> System.out.println("VERIFY ERROR " + e.getKey() + ": " + e.getValue()));
        assertTrue("corpus too small: " + jars.size(), jars.size() > 20);
        assertTrue("verified too few classes: " + ok, ok > 10000);
        assertEquals(failures.keySet().toString(), 0, failures.size());
    }
}
