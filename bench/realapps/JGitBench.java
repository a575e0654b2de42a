import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.TimeZone;
import java.util.zip.CRC32;
import org.eclipse.jgit.api.Git;
import org.eclipse.jgit.api.errors.GitAPIException;
import org.eclipse.jgit.api.errors.RefNotFoundException;
import org.eclipse.jgit.diff.DiffEntry;
import org.eclipse.jgit.diff.DiffFormatter;
import org.eclipse.jgit.diff.RawTextComparator;
import org.eclipse.jgit.lib.ObjectId;
import org.eclipse.jgit.lib.ObjectReader;
import org.eclipse.jgit.lib.PersonIdent;
import org.eclipse.jgit.lib.Repository;
import org.eclipse.jgit.revwalk.RevCommit;
import org.eclipse.jgit.revwalk.RevWalk;
import org.eclipse.jgit.treewalk.CanonicalTreeParser;

/**
 * The JGit workload of scripts/bench-realapps.sh: in an empty folder, init a repository, commit
 * COMMITS times (files added, edited, renamed and deleted; a branch and a merge), walk the log,
 * diff each commit against its parent, and print results that depend only on the content: the
 * author and committer identity and times are fixed, so the commit ids are too.
 *
 * Usage: JGitBench DIR [COMMITS]
 */
public final class JGitBench {
    private static final long EPOCH = 1_700_000_000_000L;
    private static final TimeZone UTC = TimeZone.getTimeZone("UTC");
    private static long seed = 2024;

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        int commits = args.length > 1 ? Integer.parseInt(args[1]) : 150;
        try (Git git = Git.init().setDirectory(dir.toFile()).call()) {
            Repository repo = git.getRepository();
            int tick = 0;
            for (int i = 0; i < commits; i++) {
                change(dir, i);
                git.add().addFilepattern(".").call();
                git.add().addFilepattern(".").setUpdate(true).call();
                git.commit().setMessage("change " + i + "\n\nEdits made by step " + i + " of the benchmark.\n")
                        .setAuthor(who("Ada Author", "ada@example.org", tick))
                        .setCommitter(who("Cy Committer", "cy@example.org", tick++)).call();
                if (i == commits / 2) {
                    git.branchCreate().setName("topic").call();
                }
            }
            // A topic branch with its own commits, merged back.
            git.checkout().setName("topic").call();
            for (int i = 0; i < 10; i++) {
                Files.writeString(dir.resolve("topic/note-" + i + ".txt"), "topic note " + i + "\n".repeat(i + 1),
                        StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE);
                git.add().addFilepattern("topic").call();
                git.commit().setMessage("topic " + i).setAuthor(who("Ada Author", "ada@example.org", tick))
                        .setCommitter(who("Cy Committer", "cy@example.org", tick++)).call();
            }
            git.checkout().setName("master").call();
            RevCommit merge = git.merge().include(repo.resolve("topic")).setCommit(false).call().getMergeStatus().isSuccessful()
                    ? git.commit().setMessage("merge topic").setAuthor(who("Ada Author", "ada@example.org", tick))
                            .setCommitter(who("Cy Committer", "cy@example.org", tick++)).call()
                    : null;
            System.out.println("merge: " + (merge == null ? "failed" : merge.getId().name()));
            try {
                git.checkout().setName("no-such-branch").call();
            } catch (RefNotFoundException e) {
                System.out.println("checkout of a missing branch refused: " + e.getClass().getSimpleName());
            }

            // Walk the log and diff every commit against its first parent.
            List<RevCommit> log = new ArrayList<>();
            git.log().call().forEach(log::add);
            long added = 0, deleted = 0, entries = 0;
            CRC32 patches = new CRC32();
            try (ObjectReader reader = repo.newObjectReader(); RevWalk walk = new RevWalk(repo)) {
                for (RevCommit c : log) {
                    if (c.getParentCount() == 0) {
                        continue;
                    }
                    RevCommit parent = walk.parseCommit(c.getParent(0));
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    try (DiffFormatter f = new DiffFormatter(out)) {
                        f.setRepository(repo);
                        f.setDiffComparator(RawTextComparator.WS_IGNORE_TRAILING);
                        f.setDetectRenames(true);
                        List<DiffEntry> diffs = f.scan(tree(reader, parent), tree(reader, walk.parseCommit(c)));
                        entries += diffs.size();
                        f.format(diffs);
                    }
                    for (String line : out.toString(StandardCharsets.UTF_8).split("\n")) {
                        if (line.startsWith("+") && !line.startsWith("+++")) {
                            added++;
                        } else if (line.startsWith("-") && !line.startsWith("---")) {
                            deleted++;
                        }
                    }
                    patches.update(out.toByteArray());
                }
            }
            System.out.println("log: " + log.size() + " commits, head " + log.get(0).getId().name());
            System.out.println("log: first " + log.get(log.size() - 1).getId().name() + " \"" + log.get(log.size() - 1).getShortMessage() + "\"");
            System.out.println("diffs: " + entries + " entries, +" + added + " -" + deleted + " lines, crc " + Long.toHexString(patches.getValue()));
            System.out.println("status clean: " + git.status().call().isClean());
            System.out.println("tree at head: " + countFiles(dir) + " files");
            ObjectId tree = repo.resolve("HEAD^{tree}");
            System.out.println("head tree: " + tree.name());
            System.out.println("branches: " + git.branchList().call().stream().map(r -> Repository.shortenRefName(r.getName())).toList());
        }
    }

    private static PersonIdent who(String name, String email, int tick) {
        return new PersonIdent(name, email, new Date(EPOCH + tick * 60_000L), UTC);
    }

    private static CanonicalTreeParser tree(ObjectReader reader, RevCommit c) throws IOException {
        CanonicalTreeParser p = new CanonicalTreeParser();
        p.reset(reader, c.getTree().getId());
        return p;
    }

    private static int next(int bound) {
        seed = seed * 6364136223846793005L + 1442695040888963407L;
        return (int) ((seed >>> 33) % bound);
    }

    /** Step i of the history: edits a few of 40 source-like files, now and then renames or deletes one. */
    private static void change(Path dir, int i) throws IOException {
        Path src = dir.resolve("src");
        Files.createDirectories(src);
        Files.createDirectories(dir.resolve("topic"));
        for (int k = 0; k < 4; k++) {
            Path f = src.resolve("file" + next(40) + ".txt");
            List<String> lines = Files.exists(f) ? new ArrayList<>(Files.readAllLines(f)) : new ArrayList<>();
            int edits = 1 + next(6);
            for (int e = 0; e < edits; e++) {
                String line = "line " + next(1000) + " of step " + i + " " + "x".repeat(next(40));
                if (lines.isEmpty() || next(3) > 0) {
                    lines.add(next(lines.size() + 1), line);
                } else {
                    lines.set(next(lines.size()), line);
                }
            }
            Files.write(f, lines, StandardCharsets.UTF_8);
        }
        if (i % 9 == 8) {
            Path from = src.resolve("file" + next(40) + ".txt");
            if (Files.exists(from)) {
                Files.move(from, src.resolve("moved-" + i + ".txt"));
            }
        }
        if (i % 13 == 12) {
            Path gone = src.resolve("file" + next(40) + ".txt");
            Files.deleteIfExists(gone);
        }
    }

    private static long countFiles(Path dir) throws IOException {
        try (var s = Files.walk(dir)) {
            return s.filter(p -> !p.toString().contains(File.separator + ".git")).filter(Files::isRegularFile).count();
        }
    }
}
