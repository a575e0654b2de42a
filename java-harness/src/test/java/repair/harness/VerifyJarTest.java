package repair.harness;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.FileOutputStream;
import java.nio.file.Files;
import java.util.Collections;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import org.junit.Test;
import org.objectweb.asm.ClassWriter;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;

public class VerifyJarTest {
    @Test
    public void anUnmodifiedJarVerifies() throws Exception {
        File jar = new File("/usr/share/java/commons-cli.jar").getCanonicalFile();
        VerifyJar.Result r = VerifyJar.verify(jar, Collections.emptyList());
        assertTrue("classes verified: " + r, r.ok > 10);
        assertEquals(r.toString(), 0, r.verifyErrors.size());
    }

    @Test
    public void aBrokenMethodIsReportedByName() throws Exception {
        File dir = Files.createTempDirectory("verifyjar").toFile();
        File jar = new File(dir, "broken.jar");
        try (JarOutputStream out = new JarOutputStream(new FileOutputStream(jar))) {
            out.putNextEntry(new JarEntry("demo/Fine.class"));
            out.write(classWithMethod("demo/Fine", false));
            out.putNextEntry(new JarEntry("demo/Broken.class"));
            out.write(classWithMethod("demo/Broken", true));
        }
        VerifyJar.Result r = VerifyJar.verify(jar, Collections.emptyList());
        assertEquals(r.toString(), 1, r.ok);
        assertEquals(r.toString(), Collections.singleton("demo.Broken"), r.verifyErrors.keySet());
        assertTrue(r.verifyErrors.get("demo.Broken"), r.verifyErrors.get("demo.Broken").contains("VerifyError"));

        VerifyJar.Result baseline = VerifyJar.verify(jar, Collections.emptyList());
        assertTrue("errors the original shares are not new", VerifyJar.newErrors(r, baseline).isEmpty());
    }

    /** A class whose {@code int f()} returns 1, or (broken) returns from an empty stack. */
    private static byte[] classWithMethod(String name, boolean broken) {
        ClassWriter cw = new ClassWriter(0);
        cw.visit(Opcodes.V1_8, Opcodes.ACC_PUBLIC, name, null, "java/lang/Object", null);
        MethodVisitor mv = cw.visitMethod(Opcodes.ACC_PUBLIC | Opcodes.ACC_STATIC, "f", "()I", null, null);
        mv.visitCode();
        if (!broken) {
            mv.visitInsn(Opcodes.ICONST_1);
        }
        mv.visitInsn(Opcodes.IRETURN);
        mv.visitMaxs(1, 0);
        mv.visitEnd();
        cw.visitEnd();
        return cw.toByteArray();
    }
}
