// A JavaScript workload for scripts/bench-realapps.sh, run by Rhino with -opt 9: a few classic
// algorithms over seeded pseudo-random data. Deterministic output.

var seed = 12345;
function rand(bound) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor(seed / 2147483648 * bound);
}

// 1. Sorting: quicksort and merge sort over the same data, checked against each other.
function quicksort(a, lo, hi) {
    while (lo < hi) {
        var p = a[(lo + hi) >> 1], i = lo, j = hi;
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) { var t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (j - lo < hi - i) { quicksort(a, lo, j); lo = i; } else { quicksort(a, i, hi); hi = j; }
    }
}
function mergesort(a) {
    if (a.length < 2) return a;
    var mid = a.length >> 1, l = mergesort(a.slice(0, mid)), r = mergesort(a.slice(mid)), out = [], i = 0, j = 0;
    while (i < l.length && j < r.length) out.push(l[i] <= r[j] ? l[i++] : r[j++]);
    while (i < l.length) out.push(l[i++]);
    while (j < r.length) out.push(r[j++]);
    return out;
}
var data = [];
for (var k = 0; k < 150000; k++) data.push(rand(1000000));
var q = data.slice(0);
quicksort(q, 0, q.length - 1);
var m = mergesort(data);
var same = true, checksum = 0;
for (k = 0; k < q.length; k++) { if (q[k] !== m[k]) same = false; checksum = (checksum * 31 + q[k]) % 1000000007; }
print("sort: n=" + q.length + " agree=" + same + " min=" + q[0] + " max=" + q[q.length - 1] + " checksum=" + checksum);

// 2. Sieve of Eratosthenes and a sum of primes.
function sieve(n) {
    var c = new Array(n + 1), count = 0, sum = 0;
    for (var i = 2; i <= n; i++) {
        if (!c[i]) { count++; sum += i; for (var j = i * i; j <= n; j += i) c[j] = true; }
    }
    return [count, sum];
}
var s = sieve(300000);
print("primes: below 300000 count=" + s[0] + " sum=" + s[1]);

// 3. N-body simulation (the classic benchmark's arithmetic), a fixed number of steps.
function body(x, y, z, vx, vy, vz, mass) { return { x: x, y: y, z: z, vx: vx, vy: vy, vz: vz, mass: mass }; }
var PI = Math.PI, SOLAR_MASS = 4 * PI * PI, DAYS = 365.24;
var bodies = [
    body(0, 0, 0, 0, 0, 0, SOLAR_MASS),
    body(4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
         1.66007664274403694e-03 * DAYS, 7.69901118419740425e-03 * DAYS, -6.90460016972063023e-05 * DAYS, 9.54791938424326609e-04 * SOLAR_MASS),
    body(8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
         -2.76742510726862411e-03 * DAYS, 4.99852801234917238e-03 * DAYS, 2.30417297573763929e-05 * DAYS, 2.85885980666130812e-04 * SOLAR_MASS),
    body(1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
         2.96460137564761618e-03 * DAYS, 2.37847173959480950e-03 * DAYS, -2.96589568540237556e-05 * DAYS, 4.36624404335156298e-05 * SOLAR_MASS),
    body(1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
         2.68067772490389322e-03 * DAYS, 1.62824170038242295e-03 * DAYS, -9.51592254519715870e-05 * DAYS, 5.15138902046611451e-05 * SOLAR_MASS)
];
function energy() {
    var e = 0;
    for (var i = 0; i < bodies.length; i++) {
        var b = bodies[i];
        e += 0.5 * b.mass * (b.vx * b.vx + b.vy * b.vy + b.vz * b.vz);
        for (var j = i + 1; j < bodies.length; j++) {
            var c = bodies[j], dx = b.x - c.x, dy = b.y - c.y, dz = b.z - c.z;
            e -= b.mass * c.mass / Math.sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}
function advance(dt) {
    for (var i = 0; i < bodies.length; i++) {
        var b = bodies[i];
        for (var j = i + 1; j < bodies.length; j++) {
            var c = bodies[j], dx = b.x - c.x, dy = b.y - c.y, dz = b.z - c.z;
            var d2 = dx * dx + dy * dy + dz * dz, mag = dt / (d2 * Math.sqrt(d2));
            b.vx -= dx * c.mass * mag; b.vy -= dy * c.mass * mag; b.vz -= dz * c.mass * mag;
            c.vx += dx * b.mass * mag; c.vy += dy * b.mass * mag; c.vz += dz * b.mass * mag;
        }
    }
    for (i = 0; i < bodies.length; i++) { b = bodies[i]; b.x += dt * b.vx; b.y += dt * b.vy; b.z += dt * b.vz; }
}
var before = energy();
for (k = 0; k < 50000; k++) advance(0.01);
print("nbody: energy before=" + before.toFixed(9) + " after=" + energy().toFixed(9));

// 4. Strings and objects: word counts, regular expressions, JSON round trip.
var syl = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "qu"], parts = [];
for (k = 0; k < 40000; k++) {
    var w = "", n = 1 + rand(3);
    for (var t = 0; t < n; t++) w += syl[rand(syl.length)];
    parts.push(w);
}
var text = parts.join(" ");
var counts = {};
text.split(/\s+/).forEach(function (w) { counts[w] = (counts[w] || 0) + 1; });
var keys = Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a] || (a < b ? -1 : a > b ? 1 : 0); });
print("words: total=" + parts.length + " distinct=" + keys.length + " top=" + keys.slice(0, 4).map(function (k) { return k + ":" + counts[k]; }).join(","));
var vowels = (text.match(/[aeiou]/g) || []).length, kaRuns = (text.match(/(ka)+/g) || []).length;
print("regex: vowels=" + vowels + " ka-runs=" + kaRuns + " replaced-length=" + text.replace(/qu/g, "kw").length);
var json = JSON.stringify({ words: keys.slice(0, 200).map(function (k) { return { w: k, n: counts[k] }; }) });
var back = JSON.parse(json);
print("json: length=" + json.length + " entries=" + back.words.length + " first=" + back.words[0].w);

// 5. Exceptions thrown and caught in a recursive-descent parser of arithmetic.
function parse(src) {
    var pos = 0;
    function peek() { return src.charAt(pos); }
    function num() {
        var st = pos;
        while (pos < src.length && src.charAt(pos) >= "0" && src.charAt(pos) <= "9") pos++;
        if (st === pos) throw new SyntaxError("number expected at " + pos);
        return parseInt(src.substring(st, pos), 10);
    }
    function factor() {
        if (peek() === "(") { pos++; var v = expr(); if (peek() !== ")") throw new SyntaxError(") expected"); pos++; return v; }
        return num();
    }
    function term() {
        var v = factor();
        while (peek() === "*" || peek() === "/") {
            var op = src.charAt(pos++), r = factor();
            if (op === "/" && r === 0) throw new RangeError("division by zero");
            v = op === "*" ? v * r : Math.floor(v / r);
        }
        return v;
    }
    function expr() {
        var v = term();
        while (peek() === "+" || peek() === "-") { var op = src.charAt(pos++), r = term(); v = op === "+" ? v + r : v - r; }
        return v;
    }
    var v = expr();
    if (pos !== src.length) throw new SyntaxError("trailing input at " + pos);
    return v;
}
var total = 0, syntaxErrors = 0, rangeErrors = 0;
for (k = 0; k < 20000; k++) {
    var e = "(" + rand(100) + "+" + rand(50) + ")*" + rand(9) + "-" + rand(99) + "/" + rand(4) + (k % 89 === 0 ? "+" : "");
    try { total += parse(e); } catch (ex) { if (ex instanceof SyntaxError) syntaxErrors++; else if (ex instanceof RangeError) rangeErrors++; else throw ex; }
}
print("parse: total=" + total + " syntax-errors=" + syntaxErrors + " range-errors=" + rangeErrors);
