//! The agent's log: lines on the JVM's stderr, each prefixed `repair: `, at or above the level
//! of the `log=` option (default `warn`).

use std::sync::atomic::{AtomicU8, Ordering};

use crate::config::LogLevel;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Warn as u8);

/// Writes one message to the JVM's stderr, every line of it prefixed, in one write.
pub fn line(message: &str) {
    use std::io::Write;
    // Nowhere to report a failed write to stderr.
    let _ = std::io::stderr().lock().write_all(prefixed(message).as_bytes());
}

/// `message` with `repair: ` before each of its lines (one final newline ends the last line).
fn prefixed(message: &str) -> String {
    let mut text = String::with_capacity(message.len() + 16);
    for line in message.strip_suffix('\n').unwrap_or(message).split('\n') {
        text.push_str("repair: ");
        text.push_str(line.strip_suffix('\r').unwrap_or(line));
        text.push('\n');
    }
    text
}

pub fn enabled(level: LogLevel) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Sets the level (from the agent's `log=` option).
pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_line_of_a_message_is_prefixed() {
        assert_eq!(super::prefixed("one"), "repair: one\n");
        assert_eq!(super::prefixed("one\ntwo\r\n"), "repair: one\nrepair: two\n");
        assert_eq!(super::prefixed("a\n\nb"), "repair: a\nrepair: \nrepair: b\n");
        assert_eq!(super::prefixed(""), "repair: \n");
    }
}
