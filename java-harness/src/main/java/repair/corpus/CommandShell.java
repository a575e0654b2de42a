package repair.corpus;

import java.lang.reflect.Method;
import java.util.List;
import java.util.Locale;

/**
 * An admin console that runs a line "command argument" by calling the public method named by
 * the command through reflection, as plugin consoles do, and shows "command -> result".
 *
 * <p>Bug: {@code initials(Ljava/lang/String;)Ljava/lang/String;} takes the first letter of every
 * word split on single spaces, so two spaces in a row give an empty word and charAt(0) throws
 * StringIndexOutOfBoundsException, which reaches {@code run} wrapped in
 * InvocationTargetException. Correct: empty words are skipped. Degraded: {@code initials}
 * returning null shows "null".
 */
public final class CommandShell implements Program {

    public String run(String line) throws ReflectiveOperationException {
        int space = line.indexOf(' ');
        String command = space < 0 ? line : line.substring(0, space);
        String argument = space < 0 ? "" : line.substring(space + 1);
        Method method = getClass().getMethod(command, String.class);
        return command + " -> " + method.invoke(this, argument);
    }

    public String upper(String text) {
        return text.toUpperCase(Locale.ROOT);
    }

    public int words(String text) {
        return text.isBlank() ? 0 : text.trim().split("\\s+").length;
    }

    public String initials(String text) {
        StringBuilder initials = new StringBuilder();
        for (String word : text.split(" ")) {
            initials.append(Character.toUpperCase(word.charAt(0)));
        }
        return initials.toString();
    }

    @Override
    public String bug() {
        return "initials(String), called through Method.invoke, reads the first letter of the empty word two spaces make: "
                + "StringIndexOutOfBoundsException wrapped in InvocationTargetException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("upper hello world", Check.throwing(() -> run("upper hello world")), "upper -> HELLO WORLD"),
                new Check("words the quick brown fox", Check.throwing(() -> run("words the quick brown fox")), "words -> 4"),
                new Check("initials ada lovelace", Check.throwing(() -> run("initials ada lovelace")), "initials -> AL"),
                new Check("initials grace  hopper (two spaces)", Check.throwing(() -> run("initials grace  hopper")),
                        "initials -> GH", "initials -> null"));
    }
}
