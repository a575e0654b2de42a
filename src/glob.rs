//! Shell-style globs over names (`com.shop.*`, `*Service`, `com.?hop.*`): `*` matches any run of
//! characters (dots included), `?` one character. One matcher for the whole tree: class filters,
//! policy patterns, capture scopes.

/// Whether `text` matches `glob` whole. Iterative, with backtracking to the last `*` only, so a
/// glob with many stars costs O(len(glob) × len(text)) at worst, never exponential time.
pub fn matches(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut gi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ti;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_class_names_whole() {
        assert!(matches("com.shop.*", "com.shop.PriceService"));
        assert!(matches("*Service", "com.shop.PriceService"));
        assert!(matches("com.?hop.*Serv*", "com.shop.PriceService"));
        assert!(matches("repair.demo.?rice*", "repair.demo.PriceService"));
        assert!(matches("*", "A"));
        assert!(matches("*", ""));
        assert!(!matches("com.shop", "com.shop.PriceService"));
        assert!(!matches("*Servic", "com.shop.PriceService"));
        assert!(!matches("repair.demo.*", "java.lang.String"));
        assert!(matches("", ""));
        assert!(!matches("", "anything"));
    }

    #[test]
    fn many_stars_do_not_take_exponential_time() {
        let text = "a".repeat(200);
        assert!(!matches(&format!("{}b", "*a".repeat(30)), &text));
    }
}
