// A Groovy workload for scripts/bench-realapps.sh: classes, closures, collections, string
// building, GStrings, caught exceptions. Deterministic output (fixed seeds, sorted keys).

class Account {
    String id
    long balance
    List<String> history = []

    void deposit(long amount) {
        if (amount <= 0) throw new IllegalArgumentException("bad amount $amount for $id")
        balance += amount
        history << "+$amount"
    }

    void withdraw(long amount) {
        if (amount > balance) throw new InsufficientFunds(id, amount - balance)
        balance -= amount
        history << "-$amount"
    }
}

class InsufficientFunds extends RuntimeException {
    final long missing
    InsufficientFunds(String id, long missing) {
        super("account $id is short by $missing")
        this.missing = missing
    }
}

class Lcg {
    long state
    Lcg(long seed) { state = seed }
    int next(int bound) {
        state = (state * 6364136223846793005L + 1442695040888963407L)
        return (int) ((state >>> 33) % bound)
    }
}

class Matrix {
    final int n
    final double[][] a
    Matrix(int n, Closure<Double> init) {
        this.n = n
        a = new double[n][n]
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) a[i][j] = init(i, j)
    }
    Matrix multiply(Matrix o) {
        new Matrix(n, { int i, int j ->
            double s = 0
            for (int k = 0; k < n; k++) s += a[i][k] * o.a[k][j]
            s
        })
    }
    double trace() { (0..<n).sum { a[it][it] } as double }
}

def rng = new Lcg(42)

// 1. Bank simulation: maps of objects, closures, exceptions caught now and then.
def accounts = (1..200).collectEntries { ["acct-${it.toString().padLeft(3, '0')}".toString(), new Account(id: "acct-$it")] }
def keys = accounts.keySet().sort()
int shortfalls = 0, rejected = 0
long missingTotal = 0
100000.times { i ->
    def acct = accounts[keys[rng.next(keys.size())]]
    int amount = rng.next(500) - 20
    try {
        if (rng.next(3) == 0) acct.withdraw(amount) else acct.deposit(amount)
    } catch (InsufficientFunds e) {
        shortfalls++
        missingTotal += e.missing
    } catch (IllegalArgumentException e) {
        rejected++
    }
}
def richest = accounts.values().sort { -it.balance }.take(3).collect { "${it.id}=${it.balance}" }
println "bank: shortfalls=$shortfalls rejected=$rejected missing=$missingTotal total=${accounts.values().sum { it.balance }}"
println "bank: richest ${richest.join(', ')}"
println "bank: history entries ${accounts.values().sum { it.history.size() }}"

// 2. Word statistics: string building, groupBy, countBy, sort with comparators.
def syllables = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'to', 'vi', 'ze', 'qu']
def sb = new StringBuilder()
120000.times {
    int len = 1 + rng.next(4)
    len.times { sb << syllables[rng.next(syllables.size())] }
    sb << (rng.next(12) == 0 ? '.\n' : ' ')
}
def text = sb.toString()
def words = text.split(/[\s.]+/).findAll { it }
def freq = words.countBy { it }
def top = freq.entrySet().sort { a, b -> b.value <=> a.value ?: a.key <=> b.key }.take(5)
println "words: ${words.size()} distinct=${freq.size()} lines=${text.count('\n')}"
println "words: top ${top.collect { "${it.key}:${it.value}" }.join(' ')}"
def byLength = words.groupBy { it.length() }.collectEntries { k, v -> [k, v.size()] }.sort()
println "words: by length $byLength"
def caps = words.take(2000).collect { it.capitalize() }.inject(new StringBuilder()) { acc, w -> acc << w[0] }
println "words: initials hash ${caps.toString().hashCode()}"

// 3. Numbers: primes with a sieve, a few matrix products, a memoized closure.
int limit = 600000
def composite = new boolean[limit + 1]
for (int i = 2; i * i <= limit; i++) if (!composite[i]) for (int j = i * i; j <= limit; j += i) composite[j] = true
def primes = (2..limit).findAll { !composite[it] }
println "primes: count=${primes.size()} last=${primes[-1]} sum=${primes.sum(0L)}"
def m = new Matrix(40, { int i, int j -> (double) ((i * 7 + j * 3) % 11) / 10 })
def p = m
5.times { p = p.multiply(m) }
println "matrix: trace=${String.format(Locale.ROOT, '%.6e', p.trace())}"
def fib
fib = { BigInteger n -> n < 2 ? n : fib(n - 1) + fib(n - 2) }.memoize()
println "fib(300) digits=${fib(300G).toString().length()}"
def collatz = { long n -> int steps = 0; while (n != 1) { n = (n % 2 == 0) ? n.intdiv(2) : 3 * n + 1; steps++ }; steps }
def longest = (1..60000).collect { [it, collatz(it)] }.max { it[1] }
println "collatz: longest below 60000 starts at ${longest[0]} with ${longest[1]} steps"

// 4. Parsing: a tiny expression evaluator, with bad inputs caught.
def evalExpr
evalExpr = { String s ->
    s = s.trim()
    int depth = 0
    for (int i = s.length() - 1; i >= 0; i--) {
        char c = s.charAt(i)
        if (c == ')' as char) depth++
        else if (c == '(' as char) depth--
        else if (depth == 0 && (c == '+' as char || c == '-' as char) && i > 0) {
            def l = evalExpr(s.substring(0, i)), r = evalExpr(s.substring(i + 1))
            return c == '+' as char ? l + r : l - r
        }
    }
    for (int i = s.length() - 1; i >= 0; i--) {
        char c = s.charAt(i)
        if (c == ')' as char) depth++
        else if (c == '(' as char) depth--
        else if (depth == 0 && (c == '*' as char || c == '/' as char)) {
            def l = evalExpr(s.substring(0, i)), r = evalExpr(s.substring(i + 1))
            if (c == '/' as char && r == 0) throw new ArithmeticException("division by zero in '$s'")
            return c == '*' as char ? l * r : l.intdiv(r)
        }
    }
    if (s.startsWith('(') && s.endsWith(')')) return evalExpr(s.substring(1, s.length() - 1))
    return Long.parseLong(s)
}
long exprSum = 0
int exprErrors = 0
8000.times { i ->
    def e = "(${rng.next(90) + 1} + ${rng.next(50)}) * ${rng.next(20)} - ${rng.next(99)} / ${rng.next(4)}" + (i % 97 == 0 ? ' + x' : '')
    try {
        exprSum += evalExpr(e)
    } catch (ArithmeticException | NumberFormatException ex) {
        exprErrors++
    }
}
println "expr: sum=$exprSum errors=$exprErrors"
