package org.example.textkit;

import java.util.ArrayList;
import java.util.List;

/** Splits text into tokens: numbers, words, operators, parentheses and punctuation. */
public final class Lexer {
    private final String src;
    private int pos;

    public Lexer(String src) {
        this.src = src;
    }

    public List<Token> tokens() {
        List<Token> out = new ArrayList<>();
        Token t;
        do {
            t = next();
            out.add(t);
        } while (!t.is(Token.Kind.END));
        return out;
    }

    private Token next() {
        while (pos < src.length() && Character.isWhitespace(src.charAt(pos))) {
            pos++;
        }
        if (pos >= src.length()) {
            return new Token(Token.Kind.END, "", pos);
        }
        int start = pos;
        char c = src.charAt(pos);
        if (Character.isDigit(c)) {
            while (pos < src.length() && (Character.isDigit(src.charAt(pos)) || src.charAt(pos) == '.')) {
                pos++;
            }
            return new Token(Token.Kind.NUMBER, src.substring(start, pos), start);
        }
        if (Character.isLetter(c)) {
            while (pos < src.length() && Character.isLetterOrDigit(src.charAt(pos))) {
                pos++;
            }
            return new Token(Token.Kind.WORD, src.substring(start, pos), start);
        }
        pos++;
        switch (c) {
            case '+': case '-': case '*': case '/': case '^': case '%':
                return new Token(Token.Kind.OPERATOR, String.valueOf(c), start);
            case '(':
                return new Token(Token.Kind.LPAREN, "(", start);
            case ')':
                return new Token(Token.Kind.RPAREN, ")", start);
            default:
                return new Token(Token.Kind.PUNCT, String.valueOf(c), start);
        }
    }
}
