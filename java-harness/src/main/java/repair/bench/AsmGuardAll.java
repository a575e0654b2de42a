package repair.bench;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import org.objectweb.asm.ClassReader;
import org.objectweb.asm.ClassVisitor;
import org.objectweb.asm.ClassWriter;
import org.objectweb.asm.Label;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;
import org.objectweb.asm.Type;
import org.objectweb.asm.commons.AdviceAdapter;

/**
 * The ASM side of the guard-all benchmark: wraps every method body in
 * {@code try { ... } catch (Throwable t) { return <default>; }} (constructors after their
 * super/this call) the way an ASM user writes it: an {@link AdviceAdapter}, and a
 * {@code ClassWriter} with {@code COMPUTE_FRAMES} whose {@code getCommonSuperClass} answers from
 * the corpus's own class headers instead of loading classes (ASM's documented advice).
 *
 * <pre>java repair.bench.AsmGuardAll [--seconds S] JAR...</pre>
 *
 * Warms up for S seconds (default 5), then times at least 5 passes over the corpus and prints
 * {@code asm classes=N seconds=S classes_per_s=X failures=N}.
 */
public final class AsmGuardAll {
    private final Map<String, String> superOf = new HashMap<>();
    private final Set<String> interfaces = new HashSet<>();

    public static void main(String[] args) throws IOException {
        double warmup = 5;
        List<byte[]> classes = new ArrayList<>();
        AsmGuardAll bench = new AsmGuardAll();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--seconds")) {
                warmup = Double.parseDouble(args[++i]);
                continue;
            }
            try (JarFile jf = new JarFile(new File(args[i]))) {
                for (JarEntry e : java.util.Collections.list(jf.entries())) {
                    String n = e.getName();
                    if (n.endsWith(".class") && !n.startsWith("META-INF/") && !n.endsWith("module-info.class")) {
                        byte[] b = jf.getInputStream(e).readAllBytes();
                        classes.add(b);
                        bench.learn(b);
                    }
                }
            }
        }
        long end = System.nanoTime() + (long) (warmup * 1e9);
        while (System.nanoTime() < end) {
            bench.pass(classes);
        }
        int passes = 0;
        int failures = 0;
        long start = System.nanoTime();
        while (passes < 5 || System.nanoTime() - start < 5e9) {
            failures = bench.pass(classes);
            passes++;
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        long n = (long) classes.size() * passes;
        System.out.printf("asm classes=%d seconds=%.3f classes_per_s=%.0f failures=%d%n", n, seconds, n / seconds, failures);
    }

    private void learn(byte[] b) {
        try {
            ClassReader r = new ClassReader(b);
            superOf.put(r.getClassName(), r.getSuperName());
            if ((r.getAccess() & Opcodes.ACC_INTERFACE) != 0) {
                interfaces.add(r.getClassName());
            }
        } catch (RuntimeException e) {
            // Unreadable class: it will count as a failure in the passes.
        }
    }

    /** Rewrites every class once; returns how many failed. */
    int pass(List<byte[]> classes) {
        int failures = 0;
        for (byte[] b : classes) {
            try {
                guardAll(b);
            } catch (RuntimeException e) {
                failures++;
            }
        }
        return failures;
    }

    byte[] guardAll(byte[] bytes) {
        ClassReader reader = new ClassReader(bytes);
        ClassWriter writer = new ClassWriter(reader, ClassWriter.COMPUTE_FRAMES) {
            @Override
            protected String getCommonSuperClass(String a, String b) {
                return commonSuperClass(a, b);
            }
        };
        reader.accept(new ClassVisitor(Opcodes.ASM9, writer) {
            @Override
            public MethodVisitor visitMethod(int access, String name, String desc, String sig, String[] ex) {
                MethodVisitor mv = super.visitMethod(access, name, desc, sig, ex);
                if ((access & (Opcodes.ACC_ABSTRACT | Opcodes.ACC_NATIVE)) != 0) {
                    return mv;
                }
                return new Guard(mv, access, name, desc);
            }
        }, ClassReader.SKIP_FRAMES);
        return writer.toByteArray();
    }

    String commonSuperClass(String a, String b) {
        if (interfaces.contains(a) || interfaces.contains(b)) {
            return "java/lang/Object";
        }
        Set<String> chain = new HashSet<>();
        for (String c = a; c != null; c = superOf.get(c)) {
            chain.add(c);
        }
        for (String c = b; c != null; c = superOf.get(c)) {
            if (chain.contains(c)) {
                return c;
            }
        }
        return "java/lang/Object";
    }

    /** try/catch(Throwable) over the body, returning the return type's default. */
    static final class Guard extends AdviceAdapter {
        private final Label start = new Label();
        private final Label handler = new Label();
        private final Type returnType;

        Guard(MethodVisitor mv, int access, String name, String desc) {
            super(Opcodes.ASM9, mv, access, name, desc);
            returnType = Type.getReturnType(desc);
        }

        @Override
        protected void onMethodEnter() {
            visitLabel(start);
        }

        @Override
        public void visitMaxs(int maxStack, int maxLocals) {
            Label end = new Label();
            visitLabel(end);
            visitTryCatchBlock(start, end, handler, "java/lang/Throwable");
            visitLabel(handler);
            visitInsn(Opcodes.POP);
            switch (returnType.getSort()) {
                case Type.VOID:
                    break;
                case Type.LONG:
                    visitInsn(Opcodes.LCONST_0);
                    break;
                case Type.FLOAT:
                    visitInsn(Opcodes.FCONST_0);
                    break;
                case Type.DOUBLE:
                    visitInsn(Opcodes.DCONST_0);
                    break;
                case Type.OBJECT:
                case Type.ARRAY:
                    visitInsn(Opcodes.ACONST_NULL);
                    break;
                default:
                    visitInsn(Opcodes.ICONST_0);
            }
            visitInsn(returnType.getOpcode(Opcodes.IRETURN));
            super.visitMaxs(maxStack, maxLocals);
        }
    }
}
