import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.ProtectionDomain;

/**
 * The control of scripts/bench-metaspace.sh: a pure java.lang.instrument agent that retransforms
 * repair.demo.PriceService N times in-process, alternately to the given patched bytes (made
 * offline by `repairctl rewrite`) and back to the original (the transformer returns null), and
 * prints "CYCLES METASPACE_USED_KiB" after a System.gc() every K apply/rollback cycles.
 *
 *   java -javaagent:agent.jar=PATCHED.class,N,K[,traffic] -cp harness.jar RetransformAgent
 */
public class RetransformAgent implements ClassFileTransformer {
    static volatile byte[] next; // null: the original bytes

    @Override
    public byte[] transform(Module m, ClassLoader l, String name, Class<?> c, ProtectionDomain d, byte[] bytes) {
        return "repair/demo/PriceService".equals(name) ? next : null;
    }

    static long metaspaceKiB() {
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getName().equals("Metaspace")) return p.getUsage().getUsed() / 1024;
        }
        return -1;
    }

    public static void premain(String args, Instrumentation inst) throws Exception {
        String[] a = args.split(",");
        byte[] patched = Files.readAllBytes(Path.of(a[0]));
        int n = Integer.parseInt(a[1]), k = Integer.parseInt(a[2]);
        boolean traffic = a.length > 3 && a[3].equals("traffic");
        inst.addTransformer(new RetransformAgent(), true);
        Class<?> target = Class.forName("repair.demo.PriceService");
        if (traffic) {
            for (int t = 0; t < 2; t++) {
                Thread th = new Thread(() -> {
                    Object s = new repair.demo.PriceService();
                    long sum = 0;
                    while (true) sum += ((repair.demo.PriceService) s).price("apple");
                });
                th.setDaemon(true);
                th.start();
            }
        }
        System.gc();
        System.out.println("0 " + metaspaceKiB());
        for (int i = 1; i <= n; i++) {
            next = patched;
            inst.retransformClasses(target);
            next = null;
            inst.retransformClasses(target);
            if (i % k == 0) {
                System.gc();
                System.out.println(i + " " + metaspaceKiB());
            }
        }
        System.exit(0);
    }
}
