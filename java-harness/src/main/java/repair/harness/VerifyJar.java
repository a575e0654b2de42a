package repair.harness;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * Runs HotSpot's verifier over every class of a jar: each class is defined from the jar's bytes
 * in a fresh loader and linked ({@code getDeclaredMethods} links, so verifies, without running
 * static initializers).
 *
 * <pre>java repair.harness.VerifyJar [--classpath CP] [--baseline ORIGINAL.jar] JAR</pre>
 *
 * Prints {@code ok=N verify_errors=N unresolved=N} and the first errors in full; exits 1 on any
 * verify error that the baseline jar (the original the JAR was rewritten from) does not share.
 */
public final class VerifyJar {
    /** What verifying one jar found. */
    public static final class Result {
        public int ok;
        public int unresolved;
        /** Class name to the verifier's message, for classes that failed verification. */
        public final Map<String, String> verifyErrors = new TreeMap<>();

        @Override
        public String toString() {
            return "ok=" + ok + " verify_errors=" + verifyErrors.size() + " unresolved=" + unresolved;
        }
    }

    private VerifyJar() {}

    /** Verifies every class of {@code jar}; other classes come from {@code classpath} and the JDK. */
    public static Result verify(File jar, List<File> classpath) throws IOException {
        Map<String, byte[]> classes = readClasses(jar);
        URL[] urls = new URL[classpath.size()];
        for (int i = 0; i < urls.length; i++) {
            urls[i] = classpath.get(i).toURI().toURL();
        }
        Result result = new Result();
        try (URLClassLoader deps = new URLClassLoader(urls, ClassLoader.getPlatformClassLoader())) {
            JarLoader loader = new JarLoader(classes, deps);
            for (String name : classes.keySet()) {
                try {
                    Class<?> c = Class.forName(name, false, loader);
                    c.getDeclaredMethods();
                    c.getDeclaredConstructors();
                    result.ok++;
                } catch (VerifyError | ClassFormatError e) {
                    result.verifyErrors.put(name, e.toString());
                } catch (Throwable e) {
                    // Missing dependencies, incompatible class changes, sealed packages: not ours.
                    result.unresolved++;
                }
            }
        }
        return result;
    }

    static Map<String, byte[]> readClasses(File jar) throws IOException {
        Map<String, byte[]> classes = new LinkedHashMap<>();
        try (JarFile jf = new JarFile(jar)) {
            for (Enumeration<JarEntry> e = jf.entries(); e.hasMoreElements(); ) {
                JarEntry entry = e.nextElement();
                String n = entry.getName();
                if (!n.endsWith(".class") || n.startsWith("META-INF/") || n.endsWith("module-info.class")
                        || n.endsWith("package-info.class")) {
                    continue;
                }
                try (InputStream in = jf.getInputStream(entry)) {
                    classes.put(n.substring(0, n.length() - 6).replace('/', '.'), in.readAllBytes());
                }
            }
        }
        return classes;
    }

    /** Defines the jar's classes itself (child first), everything else from the parent. */
    private static final class JarLoader extends ClassLoader {
        private final Map<String, byte[]> classes;

        JarLoader(Map<String, byte[]> classes, ClassLoader parent) {
            super(parent);
            this.classes = classes;
        }

        @Override
        protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
            synchronized (getClassLoadingLock(name)) {
                Class<?> c = findLoadedClass(name);
                if (c == null) {
                    byte[] b = classes.get(name);
                    c = b != null ? defineClass(name, b, 0, b.length) : getParent().loadClass(name);
                }
                if (resolve) {
                    resolveClass(c);
                }
                return c;
            }
        }
    }

    /** The classes that fail in {@code rewritten} but not in the original. */
    public static Map<String, String> newErrors(Result rewritten, Result baseline) {
        Map<String, String> fresh = new TreeMap<>(rewritten.verifyErrors);
        fresh.keySet().removeAll(baseline.verifyErrors.keySet());
        return fresh;
    }

    public static void main(String[] args) throws IOException {
        List<File> classpath = new ArrayList<>();
        File baseline = null;
        File jar = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--classpath":
                    for (String p : args[++i].split(File.pathSeparator)) {
                        if (!p.isEmpty()) {
                            classpath.add(new File(p));
                        }
                    }
                    break;
                case "--baseline":
                    baseline = new File(args[++i]);
                    break;
                default:
                    jar = new File(args[i]);
            }
        }
        if (jar == null) {
            System.err.println("usage: VerifyJar [--classpath CP] [--baseline ORIGINAL.jar] JAR");
            System.exit(2);
        }
        Result r = verify(jar, classpath);
        Map<String, String> errors = r.verifyErrors;
        if (baseline != null) {
            Result b = verify(baseline, classpath);
            errors = newErrors(r, b);
            System.out.println(r + " baseline_verify_errors=" + (r.verifyErrors.size() - errors.size()));
        } else {
            System.out.println(r);
        }
        int shown = 0;
        for (Map.Entry<String, String> e : errors.entrySet()) {
            if (shown++ == 10) {
                break;
            }
            System.out.println("VERIFY ERROR " + e.getKey() + ": " + e.getValue());
        }
        System.exit(errors.isEmpty() ? 0 : 1);
    }
}
