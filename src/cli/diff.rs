//! `repairctl diff ID`: what a patch did to its method, as a unified diff of the javap text of the
//! method before (the class's bytes as loaded, which the agent keeps) and after (the bytes the
//! JVM runs now).

use serde_json::json;

use super::live::{self, Conn};
use super::{out, yaml, Output};

/// The javap text of the methods `method` names (`price` or `price(Ljava/lang/String;)J`) in a
/// class's listing: from the method's header line up to the blank line that ends it.
pub fn method_text(listing: &str, method: &str) -> String {
    let (name, desc) = match method.find('(') {
        Some(i) => (&method[..i], Some(&method[i..])),
        None => (method, None),
    };
    let mut out = String::new();
    let mut inside = false;
    for line in listing.lines() {
        if !inside {
            let header = line.strip_prefix("  ").and_then(|l| l.strip_suffix(';')).filter(|l| !l.starts_with(' '));
            inside = header.is_some_and(|h| match desc {
                Some(d) => h == format!("{name}{d}"),
                None => h.strip_prefix(name).is_some_and(|rest| rest.starts_with('(')),
            });
        }
        if inside {
            if line.is_empty() {
                inside = false;
                out.push('\n');
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A unified diff of two texts by lines, with `context` lines around each change; empty when
/// they are equal.
pub fn unified(before: &str, after: &str, from: &str, to: &str, context: usize) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    // Longest common subsequence, by dynamic programming from the ends.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    // The edit script: (' ' | '-' | '+', line index in a, line index in b).
    let mut ops: Vec<(char, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i, j));
            i += 1;
        } else {
            ops.push(('+', i, j));
            j += 1;
        }
    }
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, o)| o.0 != ' ').map(|(k, _)| k).collect();
    if changed.is_empty() {
        return String::new();
    }
    let mut text = format!("--- {from}\n+++ {to}\n");
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(context);
        let mut end = changed[k] + context + 1;
        while k + 1 < changed.len() && changed[k + 1] <= end + context {
            k += 1;
            end = changed[k] + context + 1;
        }
        let end = end.min(ops.len());
        let hunk = &ops[start..end];
        let a_len = hunk.iter().filter(|o| o.0 != '+').count();
        let b_len = hunk.iter().filter(|o| o.0 != '-').count();
        let (a_start, b_start) = (hunk[0].1 + usize::from(a_len > 0), hunk[0].2 + usize::from(b_len > 0));
        text.push_str(&format!("@@ -{a_start},{a_len} +{b_start},{b_len} @@\n"));
        for (op, ai, bj) in hunk {
            let line = if *op == '+' { b[*bj] } else { a[*ai] };
            text.push(*op);
            text.push_str(line);
            text.push('\n');
        }
        k += 1;
    }
    text
}

/// Prints the diff of each class patch `id` changes, limited to its method.
pub async fn diff(conn: &Conn, id: &str, whole_class: bool) -> Result<(), String> {
    let p = live::patch(conn, id).await?;
    let mut diffs = Vec::new();
    for class in &p.classes {
        let listing = |bytes: &[u8]| {
            repair_bytecode::javap::disassemble(bytes).map_err(|e| format!("{class}: cannot disassemble: {e}"))
        };
        let before = listing(&live::class_bytes(conn, class, true).await?)?;
        let after = listing(&live::class_bytes(conn, class, false).await?)?;
        let (before, after) = if whole_class {
            (before, after)
        } else {
            (method_text(&before, &p.method), method_text(&after, &p.method))
        };
        let what = if whole_class { class.clone() } else { format!("{class}.{}", p.method) };
        let text =
            unified(&before, &after, &format!("{what} (as loaded)"), &format!("{what} (with patch {})", p.id), 3);
        diffs.push((class.clone(), text));
    }
    match conn.output {
        Output::Json | Output::Yaml => {
            let value = json!({
                "patch": p.id, "method": p.method, "action": p.action,
                "classes": diffs.iter().map(|(c, d)| json!({"class": c, "diff": d})).collect::<Vec<_>>(),
            });
            out(&if conn.output == Output::Json { format!("{value}\n") } else { yaml(&value) })
        }
        Output::Table | Output::Wide => {
            let mut text = String::new();
            for (class, d) in &diffs {
                if d.is_empty() {
                    text.push_str(&format!("{class}: the method's bytecode is the same before and after\n"));
                }
                text.push_str(d);
            }
            out(&text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unified_diff_shows_the_changed_lines_with_context() {
        let a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let b = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n";
        let d = unified(a, b, "a", "b", 1);
        assert_eq!(d, "--- a\n+++ b\n@@ -4,3 +4,3 @@\n 4\n-5\n+five\n 6\n@@ -9,1 +9,2 @@\n 9\n+10\n");
        assert_eq!(unified(a, a, "a", "b", 3), "");
    }

    #[test]
    fn the_method_is_cut_out_of_a_listing() {
        let listing = "{\n  a()V;\n    descriptor: ()V\n\n  price(Ljava/lang/String;)J;\n    descriptor: (Ljava/lang/String;)J\n    Code:\n       0: lconst_0\n\n}\n";
        assert_eq!(
            method_text(listing, "price"),
            "  price(Ljava/lang/String;)J;\n    descriptor: (Ljava/lang/String;)J\n    Code:\n       0: lconst_0\n\n"
        );
        assert_eq!(method_text(listing, "price(Ljava/lang/String;)J"), method_text(listing, "price"));
        assert_eq!(method_text(listing, "a()V"), "  a()V;\n    descriptor: ()V\n\n");
    }
}
