package repair.corpus;

import java.util.List;

/**
 * The total of one numeric column of a delimited export, where the user picks the delimiter
 * (',' ';' '+' '*' ...) and the column's index.
 *
 * <p>Bug: {@code cell(Ljava/lang/String;Ljava/lang/String;I)I} splits the line with
 * String.split, which reads the delimiter as a regular expression, so '+' or '*' throws
 * PatternSyntaxException. Correct: the delimiter taken literally. Degraded: {@code cell}
 * returning 0 makes every cell 0.
 */
public final class ColumnSum implements Program {

    public int sumColumn(String export, String delimiter, int column) {
        int sum = 0;
        for (String line : export.split("\n")) {
            sum += cell(line, delimiter, column);
        }
        return sum;
    }

    int cell(String line, String delimiter, int column) {
        return Integer.parseInt(line.split(delimiter)[column].trim());
    }

    @Override
    public String bug() {
        return "cell(String, String, int) splits on a user's delimiter read as a regular expression: PatternSyntaxException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("column 1 of 3,4 / 5,6 by ','", () -> sumColumn("3,4\n5,6", ",", 1), 10),
                new Check("column 1 of a;1 / b;2 / c;3 by ';'", () -> sumColumn("a;1\nb;2\nc;3", ";", 1), 6),
                new Check("column 1 of x+10 / y+20 by '+'", () -> sumColumn("x+10\ny+20", "+", 1), 30, 0),
                new Check("column 0 of 2*3 / 4*5 by '*'", () -> sumColumn("2*3\n4*5", "*", 0), 6, 0));
    }
}
