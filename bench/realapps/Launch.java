import java.lang.management.ManagementFactory;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Runs a program's real entry point on this JVM's main thread, then prints to stderr, in one
 * fixed-format line, the CPU time (user + system) that thread used from its start to the end of the
 * program. The java launcher creates the VM on this thread, so JVM start-up and the agent's
 * start-up callbacks that run on it are included, as they are in what the program costs.
 *
 *   realapps: main_cpu_ns=N mxbean_ns=M main_ticks=T tid=TID pid=PID status=S
 *
 * main_cpu_ns is the first field of /proc/thread-self/schedstat, the kernel's run time of this
 * thread in nanoseconds, read first, before anything else is loaded. That is the clock behind
 * ThreadMXBean.getCurrentThreadCpuTime() on Linux (CLOCK_THREAD_CPUTIME_ID), which is read next as
 * mxbean_ns: it is larger only by what loading java.lang.management costs the thread. main_ticks is
 * utime + stime from /proc/thread-self/stat in clock ticks, a coarser third view of the same thread.
 * tid != pid shows that the java launcher's first thread is not the one that runs main.
 *
 * Usage: Launch MODE args...   MODE is one of
 *   main CLASS args...  CLASS.main(args), which must return (groovy, the jgit and jetty drivers)
 *   rhino args...       org.mozilla.javascript.tools.shell.Main.exec(args), which returns its status
 *                       where main would call System.exit
 *   ant args...         org.apache.tools.ant.Main.startAnt with exit() overridden to record the
 *                       status instead of calling System.exit
 */
public final class Launch {
    public static void main(String[] args) throws Throwable {
        String mode = args[0];
        int status;
        switch (mode) {
            case "main": {
                Method m = Class.forName(args[1]).getMethod("main", String[].class);
                m.invoke(null, (Object) Arrays.copyOfRange(args, 2, args.length));
                status = 0;
                break;
            }
            case "rhino": {
                Method m = Class.forName("org.mozilla.javascript.tools.shell.Main").getMethod("exec", String[].class);
                status = (Integer) m.invoke(null, (Object) Arrays.copyOfRange(args, 1, args.length));
                break;
            }
            case "ant":
                status = AntRun.run(Arrays.copyOfRange(args, 1, args.length));
                break;
            default:
                throw new IllegalArgumentException("unknown mode " + mode);
        }
        System.out.flush();
        long ns = schedRuntime();
        long mx = ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
        String[] stat = threadStat();
        long pid = ProcessHandle.current().pid();
        System.err.println("realapps: main_cpu_ns=" + (ns >= 0 ? ns : mx) + " mxbean_ns=" + mx + " main_ticks=" + stat[1]
                + " tid=" + stat[0] + " pid=" + pid + " status=" + status);
        System.err.flush();
        if (status != 0) {
            System.exit(status);
        }
    }

    /** The calling thread's run time in ns from /proc/thread-self/schedstat, or -1. */
    private static long schedRuntime() {
        try {
            String s = Files.readString(Path.of("/proc/thread-self/schedstat"));
            return Long.parseLong(s.substring(0, s.indexOf(' ')));
        } catch (Exception e) {
            return -1;
        }
    }

    /** {tid, utime + stime} of the calling thread from /proc/thread-self/stat. */
    private static String[] threadStat() {
        try {
            String s = Files.readString(Path.of("/proc/thread-self/stat"));
            // The command name (field 2) is in parentheses and may hold spaces: split after it.
            String[] f = s.substring(s.lastIndexOf(')') + 2).trim().split(" ");
            // f[0] is field 3 (state); utime and stime are fields 14 and 15.
            long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
            return new String[] {s.substring(0, s.indexOf(' ')), Long.toString(ticks)};
        } catch (Exception e) {
            return new String[] {"?", "?"};
        }
    }

    /** Ant's own Main, whose exit() records the build's status instead of ending the JVM. */
    static final class AntRun extends org.apache.tools.ant.Main {
        private int status = -1;

        static int run(String[] args) {
            AntRun m = new AntRun();
            m.startAnt(args, null, null);
            return m.status;
        }

        @Override
        protected void exit(int exitCode) {
            status = exitCode;
        }
    }
}
