package repair.corpus;

import java.util.List;

/**
 * Minesweeper hints: for a cell of the board ('*' a mine, '.' empty), "*" if it is a mine,
 * else how many of its up to eight neighbours are mines.
 *
 * <p>Bug: {@code adjacentMines(II)I} visits all eight neighbours without checking the board's
 * edges, so a cell on an edge reads row or column -1 or past the end:
 * ArrayIndexOutOfBoundsException. Correct: only neighbours on the board count. Degraded: 0.
 */
public final class MineField implements Program {
    private final char[][] board = {
        "..*.".toCharArray(),
        ".*..".toCharArray(),
        "....".toCharArray(),
        "*..*".toCharArray(),
    };

    public String hint(int row, int col) {
        return board[row][col] == '*' ? "*" : String.valueOf(adjacentMines(row, col));
    }

    int adjacentMines(int row, int col) {
        int mines = 0;
        for (int dr = -1; dr <= 1; dr++) {
            for (int dc = -1; dc <= 1; dc++) {
                if ((dr != 0 || dc != 0) && board[row + dr][col + dc] == '*') {
                    mines++;
                }
            }
        }
        return mines;
    }

    @Override
    public String bug() {
        return "adjacentMines(int, int) reads neighbours past the board's edge: ArrayIndexOutOfBoundsException";
    }

    @Override
    public List<Check> checks() {
        return List.of(
                new Check("row 1, col 2", () -> hint(1, 2), "2"),
                new Check("row 2, col 2", () -> hint(2, 2), "2"),
                new Check("row 1, col 1 (a mine)", () -> hint(1, 1), "*"),
                new Check("row 0, col 1 (top edge)", () -> hint(0, 1), "2", "0"),
                new Check("row 3, col 2 (bottom edge)", () -> hint(3, 2), "1", "0"));
    }
}
