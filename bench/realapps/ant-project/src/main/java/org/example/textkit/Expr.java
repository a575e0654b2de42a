package org.example.textkit;

import java.util.List;
import java.util.Map;

/** An arithmetic expression tree, parsed by recursive descent from a token list. */
public sealed interface Expr permits Expr.Num, Expr.Var, Expr.Binary, Expr.Neg {
    double eval(Map<String, Double> env);

    record Num(double value) implements Expr {
        public double eval(Map<String, Double> env) {
            return value;
        }
    }

    record Var(String name) implements Expr {
        public double eval(Map<String, Double> env) {
            Double v = env.get(name);
            if (v == null) {
                throw new IllegalStateException("unbound variable " + name);
            }
            return v;
        }
    }

    record Neg(Expr inner) implements Expr {
        public double eval(Map<String, Double> env) {
            return -inner.eval(env);
        }
    }

    record Binary(char op, Expr left, Expr right) implements Expr {
        public double eval(Map<String, Double> env) {
            double l = left.eval(env), r = right.eval(env);
            return switch (op) {
                case '+' -> l + r;
                case '-' -> l - r;
                case '*' -> l * r;
                case '/' -> l / r;
                case '%' -> l % r;
                case '^' -> Math.pow(l, r);
                default -> throw new IllegalStateException("operator " + op);
            };
        }
    }

    static Expr parse(String text) {
        return new Parser(new Lexer(text).tokens()).parseAll();
    }

    final class Parser {
        private final List<Token> tokens;
        private int i;

        Parser(List<Token> tokens) {
            this.tokens = tokens;
        }

        Expr parseAll() {
            Expr e = sum();
            if (!tokens.get(i).is(Token.Kind.END)) {
                throw new IllegalArgumentException("unexpected " + tokens.get(i));
            }
            return e;
        }

        private Expr sum() {
            Expr e = product();
            while (isOp("+") || isOp("-")) {
                char op = tokens.get(i++).text().charAt(0);
                e = new Binary(op, e, product());
            }
            return e;
        }

        private Expr product() {
            Expr e = power();
            while (isOp("*") || isOp("/") || isOp("%")) {
                char op = tokens.get(i++).text().charAt(0);
                e = new Binary(op, e, power());
            }
            return e;
        }

        private Expr power() {
            Expr base = unary();
            if (isOp("^")) {
                i++;
                return new Binary('^', base, power());
            }
            return base;
        }

        private Expr unary() {
            if (isOp("-")) {
                i++;
                return new Neg(unary());
            }
            Token t = tokens.get(i++);
            switch (t.kind()) {
                case NUMBER:
                    return new Num(Double.parseDouble(t.text()));
                case WORD:
                    return new Var(t.text());
                case LPAREN: {
                    Expr e = sum();
                    if (!tokens.get(i++).is(Token.Kind.RPAREN)) {
                        throw new IllegalArgumentException("missing ) after " + t);
                    }
                    return e;
                }
                default:
                    throw new IllegalArgumentException("unexpected " + t);
            }
        }

        private boolean isOp(String op) {
            Token t = tokens.get(i);
            return t.is(Token.Kind.OPERATOR) && t.text().equals(op);
        }
    }
}
