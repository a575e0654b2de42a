package repair.corpus;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;

/**
 * A reverse-Polish calculator behind a help-desk chat command: "3 4 + 2 *" is 14. Input it
 * cannot read is answered with a message, not an exception.
 *
 * <p>Bug: {@code evaluate(Ljava/lang/String;)I} pops an operator's operands without checking
 * there are two, and ArrayDeque.pop on the empty stack throws NoSuchElementException, which
 * {@code calculate} does not expect. Correct: "missing operand for +". Degraded:
 * {@code evaluate} returning 0 answers 0 (a guard catching NoSuchElementException only: one
 * catching every exception would also answer 0 for "2 x +", which {@code calculate} explains).
 */
public final class RpnCalculator implements Program {

    public String calculate(String expression) {
        try {
            return expression + " = " + evaluate(expression);
        } catch (IllegalArgumentException e) {
            return expression + ": " + e.getMessage();
        }
    }

    int evaluate(String expression) {
        Deque<Integer> stack = new ArrayDeque<>();
        for (String token : expression.trim().split("\\s+")) {
            switch (token) {
                case "+":
                    stack.push(stack.pop() + stack.pop());
                    break;
                case "*":
                    stack.push(stack.pop() * stack.pop());
                    break;
                case "-": {
                    int right = stack.pop();
                    stack.push(stack.pop() - right);
                    break;
                }
                default:
                    stack.push(Integer.parseInt(token));
            }
        }
        return stack.pop();
    }

    @Override
    public String bug() {
        return "evaluate(String) pops an operand from an empty stack when an operator lacks one: NoSuchElementException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("3 4 + 2 *", () -> calculate("3 4 + 2 *"), "3 4 + 2 * = 14"),
                new Check("10 2 3 * -", () -> calculate("10 2 3 * -"), "10 2 3 * - = 4"),
                new Check("2 x + (not a number)", () -> calculate("2 x +"), "2 x +: For input string: \"x\""),
                new Check("3 + (missing operand)", () -> calculate("3 +"), "3 +: missing operand for +", "3 + = 0"));
    }
}
