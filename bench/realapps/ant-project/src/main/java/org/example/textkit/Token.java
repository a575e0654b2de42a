package org.example.textkit;

/** A token of the expression and text grammars. */
public record Token(Kind kind, String text, int position) {
    public enum Kind { NUMBER, WORD, OPERATOR, LPAREN, RPAREN, PUNCT, END }

    public boolean is(Kind k) {
        return kind == k;
    }

    @Override
    public String toString() {
        return kind + "(" + text + ")@" + position;
    }
}
