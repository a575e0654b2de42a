//! The `repairctl` commands, one module per command group.

pub mod deploy;
pub mod diff;
pub mod fleet;
mod json;
pub mod live;
pub mod observe;
pub mod ps;
pub mod rewrite;
pub mod topics;
mod wire;

/// How results are printed: the same `-o/--output` on every command that prints records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Tables and lines for people; long cells are cut (with `…`).
    #[default]
    #[value(alias = "human")]
    Table,
    /// Tables with every cell in full.
    Wide,
    /// JSON: one document, or one object a line for a stream (`--follow`).
    Json,
    /// YAML: one document, or one `---` document per record for a stream.
    Yaml,
}

impl Output {
    /// Whether this is one of the tables (`table` or `wide`).
    pub fn is_table(self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

/// Writes `text` to stdout. Rust ignores SIGPIPE, so a reader that went away (`repairctl … | head`)
/// shows up here as EPIPE, which `print!` would turn into a panic: it ends repairctl quietly
/// instead, with status 0, since the reader took all it wanted.
pub fn out(text: &str) -> Result<(), String> {
    out_bytes(text.as_bytes())
}

/// [`out`] for text already encoded (UTF-8).
pub fn out_bytes(text: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let written = {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text).and_then(|()| stdout.flush())
    };
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("writing to stdout: {e}")),
    }
}

/// Prints `value` as JSON or YAML, or the table text `human` gives (told whether it is wide).
pub fn print(output: Output, value: serde_json::Value, human: impl FnOnce(bool) -> String) -> Result<(), String> {
    match output {
        Output::Json => out(&format!("{value}\n")),
        Output::Yaml => out(&yaml(&value)),
        Output::Table => out(&human(false)),
        Output::Wide => out(&human(true)),
    }
}

/// One record of a stream: a JSON object on one line, a YAML document, or the table line.
pub fn print_record(
    output: Output,
    value: &serde_json::Value,
    line: impl FnOnce(bool) -> String,
) -> Result<(), String> {
    out(&record_text(output, || value.clone(), line))
}

/// A record of a stream as `output` prints it; only the form asked for is built.
pub fn record_text(
    output: Output,
    value: impl FnOnce() -> serde_json::Value,
    line: impl FnOnce(bool) -> String,
) -> String {
    match output {
        Output::Json => format!("{}\n", value()),
        Output::Yaml => format!("---\n{}", yaml(&value())),
        Output::Table => format!("{}\n", line(false)),
        Output::Wide => format!("{}\n", line(true)),
    }
}

/// `value` as a YAML document (without the leading `---`).
pub fn yaml(value: &serde_json::Value) -> String {
    serde_yaml_ng::to_string(value).unwrap_or_else(|e| format!("# cannot print as YAML: {e}\n"))
}

/// The widest a cell of a (not wide) table gets; the last column gets [`LAST_CELL`].
pub const CELL: usize = 40;
/// The widest the last cell of a (not wide) row gets: messages and reasons read best long.
pub const LAST_CELL: usize = 100;

/// `s` cut to `max` characters, at a word boundary when one is near, ending in `…`.
pub fn cut(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        return s;
    }
    let keep: String = s.chars().take(max.saturating_sub(1)).collect();
    let ends_a_word = s.chars().nth(max.saturating_sub(1)) == Some(' ');
    let at_word = if ends_a_word {
        Some(keep.trim_end())
    } else {
        keep.rfind(' ').filter(|&i| keep[..i].chars().count() + 12 >= max).map(|i| keep[..i].trim_end())
    };
    format!("{}…", at_word.unwrap_or(&keep))
}

/// Left-aligned columns under a header row; unless `wide`, long cells are cut (see [`cut`]).
/// No rows: the line `empty` (`no patches`) instead of a bare header.
pub fn table(header: &[&str], rows: &[Vec<String>], wide: bool, empty: &str) -> String {
    if rows.is_empty() {
        return format!("{empty}\n");
    }
    let last = header.len() - 1;
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(i, c)| if wide { c.clone() } else { cut(c, if i == last { LAST_CELL } else { CELL }) })
                .collect()
        })
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i < last {
                s.extend(std::iter::repeat_n(' ', width[i] - c.chars().count() + 2));
            }
        }
        let mut s = s.trim_end().to_string();
        s.push('\n');
        s
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

/// Whether standard error is a terminal (progress lines go there only then).
pub fn stderr_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut_unless_wide_and_empty_tables_say_so() {
        let long = "x".repeat(10_000);
        let rows = vec![vec![long.clone(), "ok".to_string()]];
        let t = table(&["ID", "STATE"], &rows, false, "no patches");
        assert!(t.lines().all(|l| l.chars().count() < 60), "{t}");
        assert!(t.contains('…'));
        assert!(table(&["ID", "STATE"], &rows, true, "no patches").contains(&long));
        assert_eq!(table(&["ID", "STATE"], &[], false, "no patches"), "no patches\n");
        assert_eq!(cut("a few short words here", 12), "a few short…");
    }
}
