//! Conditions of an observation (`repairctl watch ... --if EXPR`): which calls are reported.
//!
//! A condition compares what a call saw with literals, and combines comparisons with `&&` and `||`
//! (`&&` binds tighter; no parentheses):
//!
//! ```text
//! duration > 5ms && args[0] == "pear"
//! exception != null || return < 0
//! thread ~ "http-"
//! ```
//!
//! Operands: `args[N]` (0-based), `return`, `exception` (the thrown class's name, `null` when the
//! call returned), `duration` (compared with a duration: `5ms`, `200us`, `1s`, or a number of
//! milliseconds) and `thread`. Operators: `==`, `!=`, `<`, `<=`, `>`, `>=` (numbers), `~` (the text
//! contains). Literals: numbers, `"text"`, `null`, `true`, `false`. A comparison of values of
//! different kinds is false (never an error at run time): a condition is checked once, when it is
//! parsed, and then only evaluated, on the application's threads, without allocating much.

use std::fmt;

/// The ids of observations' probe patches start with this (`observe-3`); patch specs may not.
pub const PATCH_PREFIX: &str = "observe-";

/// What a call saw, as the agent rendered it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integral value (`int`, `long`, ...): exact, where an `f64` would round a large `long`.
    Integer(i64),
    Number(f64),
    Text(String),
    /// An object other than a string, a boxed primitive or an array: its rendering.
    Object(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Object(s) => f.write_str(s),
        }
    }
}

impl Value {
    /// The text [`fmt::Display`] gives, built without the formatting machinery where it can be:
    /// the stream shows every watched value this way, by the hundred thousand a second.
    pub fn shown(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Integer(n) => n.to_string(),
            // Printable ASCII but the quote and the backslash is what `{:?}` leaves as it is.
            Value::Text(s) if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') => {
                let mut text = String::with_capacity(s.len() + 2);
                text.push('"');
                text.push_str(s);
                text.push('"');
                text
            }
            Value::Object(s) => s.clone(),
            v => v.to_string(),
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Value::Integer(_) | Value::Number(_))
    }

    fn as_f64(&self) -> f64 {
        match self {
            Value::Integer(n) => *n as f64,
            Value::Number(n) => *n,
            _ => f64::NAN,
        }
    }
}

/// One call as a condition sees it.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    /// The values of the condition's paths (see [`Condition::exprs`]), by their text.
    pub values: &'a [(String, Value)],
    /// The thrown exception's class name.
    pub exception: Option<&'a str>,
    pub duration_ns: u64,
    pub thread: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    /// A value the agent extracts for the call (`args[0]`, `args[0].items.size`, `return.total`,
    /// `this.count`), by its text.
    Path(Expr),
    Exception,
    Duration,
    Thread,
}

/// Where a value path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    Arg(usize),
    Return,
    This,
}

/// A value path: `args[N]`, `return` or `this`, then field names (`.items.size`; `.length` of an
/// array), read by the agent without running Java code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Expr {
    pub root: Root,
    pub fields: Vec<String>,
    /// As written, without spaces: the key a call's extracted values are found under.
    pub text: String,
}

impl Expr {
    /// Parses `args[0].items.size`, `return.total`, `this.count`; `arity` bounds `args[N]`.
    pub fn parse(text: &str, arity: Option<usize>) -> Result<Expr, String> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (head, fields) = match text.split_once('.') {
            Some((h, rest)) => (h, rest.split('.').map(str::to_string).collect::<Vec<_>>()),
            None => (text.as_str(), Vec::new()),
        };
        let root = match head {
            "return" => Root::Return,
            "this" => Root::This,
            _ => {
                let n = head
                    .strip_prefix("args[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        format!("{head:?} is not an operand: use args[N], return, this, exception, duration or thread")
                    })?;
                if let Some(arity) = arity.filter(|a| n >= *a) {
                    return Err(format!(
                        "args[{n}]: the method takes {arity} argument{}",
                        if arity == 1 { "" } else { "s" }
                    ));
                }
                Root::Arg(n)
            }
        };
        if let Some(bad) = fields.iter().find(|f| !is_java_identifier(f)) {
            return Err(format!("{text}: {bad:?} is not a field name"));
        }
        Ok(Expr { root, fields, text })
    }
}

/// A log line's text: literal parts and `{local}` / `{local.field.field}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// A local's name and the fields into it.
    Value {
        local: String,
        fields: Vec<String>,
    },
}

impl Template {
    /// Parses `total {total} for {order.items.size} items`; `{{` and `}}` are braces.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let inner: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    let path: Vec<String> = inner.trim().split('.').map(str::to_string).collect();
                    if path.iter().any(|p| !is_java_identifier(p)) {
                        return Err(format!(
                            "{text:?}: {{{inner}}} is not a local or a field path such as {{order.total}}"
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Value { local: path[0].clone(), fields: path[1..].to_vec() });
                }
                '}' => return Err(format!("{text:?}: a }} without its {{ (write }}}} for a brace)")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }
}

fn is_java_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_alphabetic() || f == '_' || f == '$')
        && c.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    operand: Operand,
    op: Op,
    literal: Value,
}

/// A parsed condition: alternatives (`||`) of conjunctions (`&&`) of comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    any: Vec<Vec<Comparison>>,
    text: String,
}

impl Condition {
    /// The value paths the condition reads: the agent extracts them for each call.
    pub fn exprs(&self) -> Vec<Expr> {
        let mut v: Vec<Expr> = Vec::new();
        for c in self.any.iter().flatten() {
            if let Operand::Path(e) = &c.operand {
                if !v.contains(e) {
                    v.push(e.clone());
                }
            }
        }
        v
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Condition {
    /// Parses `text`; the error names the part that does not parse and what was expected.
    /// `arity` is the observed method's parameter count, when known: `args[N]` beyond it is an
    /// error.
    pub fn parse(text: &str, arity: Option<usize>) -> Result<Condition, String> {
        let mut any = Vec::new();
        for alternative in split_outside_quotes(text, "||") {
            let mut all = Vec::new();
            for comparison in split_outside_quotes(alternative, "&&") {
                all.push(comparison_of(comparison.trim(), arity).map_err(|e| format!("--if {text:?}: {e}"))?);
            }
            any.push(all);
        }
        Ok(Condition { any, text: text.trim().to_string() })
    }

    pub fn holds(&self, call: &Call<'_>) -> bool {
        self.any.iter().any(|all| all.iter().all(|c| c.holds(call)))
    }
}

/// `text` split at `separator`, except inside `"..."`.
fn split_outside_quotes<'t>(text: &'t str, separator: &str) -> Vec<&'t str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    let mut i = 0;
    while i < text.len() {
        if text.as_bytes()[i] == b'"' {
            quoted = !quoted;
        } else if !quoted && text[i..].starts_with(separator) {
            parts.push(&text[start..i]);
            i += separator.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

fn comparison_of(text: &str, arity: Option<usize>) -> Result<Comparison, String> {
    if text.is_empty() {
        return Err("an empty comparison (around && or ||)".to_string());
    }
    const OPS: [(&str, Op); 7] = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
        ("~", Op::Contains),
    ];
    let (at, token, op) = OPS
        .iter()
        .filter_map(|(t, op)| text.find(t).map(|i| (i, *t, *op)))
        .min_by_key(|(i, t, _)| (*i, std::cmp::Reverse(t.len())))
        .ok_or_else(|| format!("{text:?}: no comparison (==, !=, <, <=, >, >=, ~)"))?;
    let (left, right) = (text[..at].trim(), text[at + token.len()..].trim());
    let operand = match left {
        "exception" => Operand::Exception,
        "duration" => Operand::Duration,
        "thread" => Operand::Thread,
        _ => Operand::Path(Expr::parse(left, arity)?),
    };
    let literal = if operand == Operand::Duration { Value::Number(duration_ms(right)?) } else { literal_of(right)? };
    let numeric = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
    if numeric && !literal.is_numeric() {
        return Err(format!("{text:?}: {token} compares numbers, and {right} is not one"));
    }
    if op == Op::Contains && !matches!(literal, Value::Text(_)) {
        return Err(format!("{text:?}: ~ looks for a text, give one in quotes"));
    }
    Ok(Comparison { operand, op, literal })
}

fn literal_of(s: &str) -> Result<Value, String> {
    match s {
        "" => Err("a comparison without a value on its right".to_string()),
        "null" => Ok(Value::Null),
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        _ if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') => Ok(Value::Text(s[1..s.len() - 1].to_string())),
        _ if s.parse::<i64>().is_ok() => Ok(Value::Integer(s.parse().unwrap_or_default())),
        _ => s
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Value::Number)
            .ok_or_else(|| format!("{s:?} is not a value: use a number, \"text\" in quotes, null, true or false")),
    }
}

/// `5ms`, `200us`, `1.5s`, `3` (milliseconds) → milliseconds.
fn duration_ms(s: &str) -> Result<f64, String> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("{s:?} is not a duration: use 5ms, 200us, 1s"))?;
    let scale = match unit.trim() {
        "" | "ms" => 1.0,
        "us" | "µs" => 0.001,
        "ns" => 0.000_001,
        "s" => 1000.0,
        u => return Err(format!("{s:?}: unit {u:?} is not one of ns, us, ms, s")),
    };
    Ok(n * scale)
}

impl Comparison {
    fn holds(&self, call: &Call<'_>) -> bool {
        let duration;
        let thread;
        let exception;
        let value: &Value = match &self.operand {
            Operand::Path(e) => match call.values.iter().find(|(k, _)| *k == e.text) {
                Some((_, v)) => v,
                None => return false,
            },
            Operand::Exception => {
                exception = call.exception.map_or(Value::Null, |e| Value::Text(e.to_string()));
                &exception
            }
            Operand::Duration => {
                duration = Value::Number(call.duration_ns as f64 / 1e6);
                &duration
            }
            Operand::Thread => {
                thread = Value::Text(call.thread.to_string());
                &thread
            }
        };
        compare(value, self.op, &self.literal)
    }
}

fn compare(value: &Value, op: Op, literal: &Value) -> bool {
    use std::cmp::Ordering;
    let text = |v: &Value| match v {
        Value::Text(s) | Value::Object(s) => Some(s.clone()),
        Value::Integer(n) => Some(n.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
    };
    let order = match (value, literal) {
        (Value::Integer(a), Value::Integer(b)) => Some(a.cmp(b)),
        (a, b) if a.is_numeric() && b.is_numeric() => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::Text(a), Value::Text(b)) | (Value::Object(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    };
    let numbers = value.is_numeric() && literal.is_numeric();
    match op {
        Op::Eq => order == Some(Ordering::Equal),
        Op::Ne => order != Some(Ordering::Equal),
        Op::Lt => numbers && order == Some(Ordering::Less),
        Op::Le => numbers && order != Some(Ordering::Greater),
        Op::Gt => numbers && order == Some(Ordering::Greater),
        Op::Ge => numbers && order != Some(Ordering::Less),
        Op::Contains => match (text(value), literal) {
            (Some(v), Value::Text(needle)) => v.contains(needle.as_str()),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_shown_fast_reads_as_its_display() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Integer(-42),
            Value::Number(2.5),
            Value::Text("pear".into()),
            Value::Text("it's 5 \"o'clock\"".into()),
            Value::Text("a\\b\n\u{7f}é\u{0}".into()),
            Value::Text(String::new()),
            Value::Object("<shop.Order>".into()),
        ];
        for v in values {
            assert_eq!(v.shown(), v.to_string(), "{v:?}");
        }
    }

    #[test]
    fn integers_compare_exactly_past_what_a_double_holds() {
        let big = Value::Integer(9_007_199_254_740_993); // 2^53 + 1: a double rounds it to 2^53
        assert_eq!(big.to_string(), "9007199254740993");
        assert!(compare(&big, Op::Eq, &literal_of("9007199254740993").unwrap()));
        assert!(!compare(&big, Op::Eq, &literal_of("9007199254740992").unwrap()));
        assert!(compare(&big, Op::Gt, &literal_of("9007199254740992").unwrap()));
        assert!(compare(&Value::Integer(3), Op::Lt, &literal_of("3.5").unwrap()), "integers and decimals compare");
        assert!(compare(&Value::Number(3.0), Op::Eq, &literal_of("3").unwrap()));
    }

    /// The call's values as the agent extracts them for `text`'s condition.
    fn values(text: &str, args: &[Value], returned: Option<&Value>) -> Vec<(String, Value)> {
        Condition::parse(text, Some(2))
            .unwrap()
            .exprs()
            .into_iter()
            .filter_map(|e| {
                let v = match e.root {
                    Root::Arg(n) => args.get(n)?.clone(),
                    Root::Return => returned.cloned().unwrap_or(Value::Null),
                    Root::This => return None,
                };
                Some((e.text, v))
            })
            .collect()
    }

    fn call<'a>(values: &'a [(String, Value)], exception: Option<&'a str>, ms: f64) -> Call<'a> {
        Call { values, exception, duration_ns: (ms * 1e6) as u64, thread: "http-7" }
    }

    #[test]
    fn conditions_compare_what_a_call_saw() {
        let args = [Value::Text("pear".into()), Value::Number(3.0)];
        let ret = Value::Number(-1.0);
        let holds = |text: &str, exception: Option<&str>, ms: f64, returned: Option<&Value>| {
            let v = values(text, &args, returned);
            Condition::parse(text, Some(2)).unwrap().holds(&call(&v, exception, ms))
        };
        let slow = |text: &str| holds(text, None, 12.0, Some(&ret));
        assert!(slow("args[0] == \"pear\""));
        assert!(!slow("args[0] == \"apple\""));
        assert!(slow("duration > 5ms && return < 0"));
        assert!(!slow("duration > 20ms && return < 0"));
        assert!(slow("duration > 20ms || args[1] >= 3"));
        assert!(slow("exception == null && thread ~ \"http-\""));
        assert!(slow("duration >= 12000us"));
        let threw = |text: &str| holds(text, Some("java.lang.NullPointerException"), 0.5, None);
        assert!(threw("exception ~ \"NullPointer\""));
        assert!(threw("exception != null"));
        assert!(threw("return == null"));
        // Values of another kind never match, and never fail.
        assert!(!slow("args[0] > 3"));
        assert!(!slow("args[1] == \"3\""));
        let odd = [Value::Text("a && b || c".into())];
        let text = "args[0] == \"a && b || c\"";
        let v = values(text, &odd, None);
        assert!(Condition::parse(text, Some(2)).unwrap().holds(&call(&v, None, 0.0)));
        // Paths into values are extracted by the agent, under their text.
        let c = Condition::parse("args[0].items.size > 2 && return . total == 5", Some(1)).unwrap();
        let exprs: Vec<String> = c.exprs().into_iter().map(|e| e.text).collect();
        assert_eq!(exprs, ["args[0].items.size", "return.total"]);
        let v = vec![
            ("args[0].items.size".to_string(), Value::Number(3.0)),
            ("return.total".to_string(), Value::Number(5.0)),
        ];
        assert!(c.holds(&call(&v, None, 0.0)));
    }

    #[test]
    fn log_templates_have_text_and_placeholders() {
        let t = Template::parse("total {total} for {order.items.size} items {{x}}").unwrap();
        assert_eq!(
            t.parts,
            [
                Part::Text("total ".into()),
                Part::Value { local: "total".into(), fields: vec![] },
                Part::Text(" for ".into()),
                Part::Value { local: "order".into(), fields: vec!["items".into(), "size".into()] },
                Part::Text(" items {x}".into()),
            ]
        );
        assert!(Template::parse("a {1x} b").unwrap_err().contains("is not a local"));
        assert!(Template::parse("a } b").unwrap_err().contains("without its {"));
    }

    #[test]
    fn a_condition_that_does_not_parse_says_where_and_why() {
        let err = |t: &str| Condition::parse(t, Some(2)).unwrap_err();
        assert_eq!(
            err("args[0] = 3"),
            "--if \"args[0] = 3\": \"args[0] = 3\": no comparison (==, !=, <, <=, >, >=, ~)"
        );
        assert_eq!(err("args[2] == 1"), "--if \"args[2] == 1\": args[2]: the method takes 2 arguments");
        assert!(err("arg[0] == 1").contains("\"arg[0]\" is not an operand"));
        assert!(err("args[0].1x == 1").contains("\"1x\" is not a field name"));
        assert!(err("duration > fast").contains("is not a duration"));
        assert!(err("duration > 3h").contains("unit \"h\""));
        assert!(err("return > \"x\"").contains("compares numbers"));
        assert!(err("return == pear").contains("\"pear\" is not a value"));
        assert!(err("return == 1 &&").contains("an empty comparison"));
        assert!(err("thread ~ 3").contains("~ looks for a text"));
    }
}
