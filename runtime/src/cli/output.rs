//! How the commands print: aligned tables, readable times and sizes, JSON for
//! scripts, and payloads shown as pretty JSON, text or hex.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use comfy_table::{CellAlignment, Table, presets};
use serde::Serialize;

use crate::clock::Millis;

/// A borderless table with a header, columns separated by spaces; the
/// columns in `right` (numbers) are right-aligned.
pub(super) fn table(header: &[&str], right: &[usize]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.to_vec());
    for &i in right {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Prints a table without trailing spaces.
pub(super) fn print_table(out: &mut impl Write, table: &Table) -> std::io::Result<()> {
    for line in table.lines() {
        // Drop the one-space margin the preset leaves at each line's start.
        let line = line.strip_prefix(' ').unwrap_or(&line);
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Prints `value` as pretty JSON followed by a newline.
pub(super) fn print_json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A stored timestamp in RFC 3339 (UTC, to the second).
pub(super) fn timestamp(ms: Millis) -> String {
    let Ok(ms) = u64::try_from(ms) else {
        return ms.to_string();
    };
    let time = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A duration in ms as "3m 12s" (rounded to the second above a second).
pub(super) fn age(ms: Millis) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    let d = if ms >= 1000 {
        Duration::from_secs(ms / 1000)
    } else {
        Duration::from_millis(ms)
    };
    humantime::format_duration(d).to_string()
}

/// How long ago `ms` was, for humans ("5m 3s ago").
pub(super) fn ago(ms: Millis) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    format!("{} ago", age(now.saturating_sub(ms).max(0)))
}

/// The first line of `text`, at most `max` characters, with an ellipsis when
/// cut: error texts in a table row.
pub(super) fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    let cut: String = first.chars().take(max).collect();
    if cut.len() < text.len() {
        format!("{}…", cut.trim_end())
    } else {
        cut
    }
}

/// A payload for humans: pretty JSON when it is JSON (keys in their stored
/// order), the text when it is UTF-8, else a hex dump. Returns what it is and
/// the rendering.
pub(super) fn payload(bytes: &[u8]) -> (&'static str, String) {
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return ("JSON", pretty_json(text));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => ("text", text.to_owned()),
        Err(_) => ("binary", hex_dump(bytes)),
    }
}

/// Re-indents valid JSON text by two spaces per level. Works on the text, not
/// a parsed value, so object keys keep their order and numbers their spelling.
pub(super) fn pretty_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Empty containers stay on one line: `{}`, `[]`.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if let Some(&close) = chars.peek().filter(|&&n| n == '}' || n == ']') {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// 16 bytes per line: offset, hex, and the printable ASCII.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{:08x}  {:<47}  {ascii}\n", i * 16, hex.join(" ")));
    }
    out.trim_end().to_owned()
}

/// The command line that was run, with `--cursor` set to `cursor`: what to
/// run for the next page, with every filter and option kept.
pub(super) fn next_page_command(cursor: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--cursor" {
            args.next();
        } else if !arg.starts_with("--cursor=") {
            words.push(arg);
        }
    }
    words.push("--cursor".into());
    words.push(cursor.into());
    let quoted =
        shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "));
    format!("mailroom {quoted}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_json_keeps_order_and_spelling() {
        let text = r#"{"z": 1.50, "a":[1,{"s":"x, {y}: \"q\""}], "e":{}, "l":[ ]}"#;
        assert_eq!(
            pretty_json(text),
            "{\n  \"z\": 1.50,\n  \"a\": [\n    1,\n    {\n      \"s\": \"x, {y}: \\\"q\\\"\"\n    }\n  ],\n  \"e\": {},\n  \"l\": []\n}"
        );
        assert_eq!(pretty_json("42"), "42");
    }

    #[test]
    fn payload_kinds() {
        assert_eq!(payload(br#"{"a":1}"#).0, "JSON");
        assert_eq!(payload(b"hello there").1, "hello there");
        let (kind, dump) = payload(&[0xff, 0x00, b'A']);
        assert_eq!(kind, "binary");
        assert!(dump.starts_with("00000000  ff 00 41"), "{dump}");
        assert!(dump.ends_with("..A"), "{dump}");
    }

    #[test]
    fn times_read_well() {
        assert_eq!(timestamp(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(age(192_400), "3m 12s");
        assert_eq!(age(250), "250ms");
        assert_eq!(one_line("first\nsecond", 80), "first…");
        assert_eq!(one_line("short", 80), "short");
    }
}
