//! The host's rules for a plugin's name, version and event types, checked
//! while the plugin compiles: [`export_plugin!`](crate::export_plugin)
//! evaluates [`plugin_info`] in a constant, so a plugin the host would refuse
//! at load time does not build, and the compiler's error names the rule.
//!
//! The rules mirror the host's (`runtime/src/plugin/loaded.rs`,
//! `validate_info`, and `runtime/src/message.rs`, `validate_event_type`):
//!
//! - the name, once surrounding whitespace is trimmed, is not empty;
//! - the trimmed name and the version are at most 255 bytes and have no
//!   control character;
//! - there is at least one event type, and each is 1 to 255 bytes of
//!   `[A-Za-z0-9._:-]`.
//!
//! Everything here is `const fn`: a broken rule is a panic during constant
//! evaluation, which is a compile error.

/// The longest name, version or event type, in bytes.
pub const MAX_FIELD_BYTES: usize = 255;

/// The room for one error message: the rule plus the offending value.
const MESSAGE_BYTES: usize = 1024;

/// Checks a plugin's name, version and event types against the host's rules.
///
/// # Panics
///
/// With a message naming the rule and the value when one is broken; called in
/// a constant, that is a compile error.
pub const fn plugin_info(name: &str, version: &str, event_types: &[&str]) {
    let trimmed = trim(name);
    if trimmed.is_empty() {
        panic!(
            "mailroom-sdk: Plugin::NAME is empty: give the plugin a name (at most 255 bytes, no control characters)"
        );
    }
    if trimmed.len() > MAX_FIELD_BYTES {
        fail(
            "mailroom-sdk: Plugin::NAME is over 255 bytes: shorten it: ",
            trimmed,
        );
    }
    if has_control(trimmed) {
        fail(
            "mailroom-sdk: Plugin::NAME has a control character (newline, tab, ...): remove it: ",
            trimmed,
        );
    }
    if version.len() > MAX_FIELD_BYTES {
        fail(
            "mailroom-sdk: the plugin version is over 255 bytes: shorten it: ",
            version,
        );
    }
    if has_control(version) {
        fail(
            "mailroom-sdk: the plugin version has a control character: remove it: ",
            version,
        );
    }
    if event_types.is_empty() {
        panic!(
            "mailroom-sdk: Plugin::EVENT_TYPES is empty: a plugin must handle at least one event type"
        );
    }
    let mut i = 0;
    while i < event_types.len() {
        event_type(event_types[i]);
        i += 1;
    }
}

/// Checks one event type: 1 to 255 bytes of `[A-Za-z0-9._:-]`.
///
/// # Panics
///
/// With a message naming the rule and the event type when it is broken.
pub const fn event_type(event_type: &str) {
    if event_type.is_empty() {
        panic!(
            "mailroom-sdk: Plugin::EVENT_TYPES has an empty event type: an event type is 1 to 255 bytes of [A-Za-z0-9._:-]"
        );
    }
    if event_type.len() > MAX_FIELD_BYTES {
        fail(
            "mailroom-sdk: an event type in Plugin::EVENT_TYPES is over 255 bytes: ",
            event_type,
        );
    }
    let bytes = event_type.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
            fail(
                "mailroom-sdk: an event type in Plugin::EVENT_TYPES has a character outside [A-Za-z0-9._:-]: ",
                event_type,
            );
        }
        i += 1;
    }
}

/// Panics with `rule` followed by `value` in backquotes (the value cut to fit).
const fn fail(rule: &str, value: &str) -> ! {
    let mut buffer = [0u8; MESSAGE_BYTES];
    let mut len = 0;
    len = append(&mut buffer, len, rule.as_bytes());
    len = append(&mut buffer, len, b"`");
    // Leave room for the closing quote; cut at a character boundary.
    let mut room = MESSAGE_BYTES - len - 1;
    if room > value.len() {
        room = value.len();
    }
    while room > 0 && room < value.len() && !value.is_char_boundary(room) {
        room -= 1;
    }
    let (shown, _) = value.as_bytes().split_at(room);
    len = append(&mut buffer, len, shown);
    len = append(&mut buffer, len, b"`");
    let (message, _) = buffer.split_at(len);
    match core::str::from_utf8(message) {
        Ok(message) => panic!("{}", message),
        Err(_) => panic!("{}", rule),
    }
}

/// Copies `bytes` into `buffer` at `at` (as many as fit); returns the new length.
const fn append(buffer: &mut [u8; MESSAGE_BYTES], at: usize, bytes: &[u8]) -> usize {
    let mut len = at;
    let mut i = 0;
    while i < bytes.len() && len < MESSAGE_BYTES {
        buffer[len] = bytes[i];
        len += 1;
        i += 1;
    }
    len
}

/// `s` without leading and trailing whitespace, as `str::trim` does.
const fn trim(s: &str) -> &str {
    let mut rest = s;
    while let Some((c, width)) = first_char(rest.as_bytes()) {
        if !c.is_whitespace() {
            break;
        }
        rest = rest.split_at(width).1;
    }
    while let Some((c, width)) = last_char(rest.as_bytes()) {
        if !c.is_whitespace() {
            break;
        }
        rest = rest.split_at(rest.len() - width).0;
    }
    rest
}

/// Whether `s` has a character of the Unicode category Cc, as
/// `char::is_control` says (U+0000 to U+001F and U+007F to U+009F).
const fn has_control(s: &str) -> bool {
    let mut rest = s.as_bytes();
    while let Some((c, width)) = first_char(rest) {
        if matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}') {
            return true;
        }
        rest = rest.split_at(width).1;
    }
    false
}

/// The first character of valid UTF-8 `bytes` and its width.
const fn first_char(bytes: &[u8]) -> Option<(char, usize)> {
    if bytes.is_empty() {
        return None;
    }
    let b0 = bytes[0] as u32;
    let (width, mut code) = if b0 < 0x80 {
        (1, b0)
    } else if b0 < 0xE0 {
        (2, b0 & 0x1F)
    } else if b0 < 0xF0 {
        (3, b0 & 0x0F)
    } else {
        (4, b0 & 0x07)
    };
    let mut i = 1;
    while i < width && i < bytes.len() {
        code = (code << 6) | (bytes[i] as u32 & 0x3F);
        i += 1;
    }
    match char::from_u32(code) {
        Some(c) => Some((c, width)),
        None => None,
    }
}

/// The last character of valid UTF-8 `bytes` and its width.
const fn last_char(bytes: &[u8]) -> Option<(char, usize)> {
    if bytes.is_empty() {
        return None;
    }
    let mut start = bytes.len() - 1;
    // Continuation bytes are 0b10xx_xxxx.
    while start > 0 && bytes[start] & 0xC0 == 0x80 {
        start -= 1;
    }
    first_char(bytes.split_at(start).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(f: impl FnOnce() + std::panic::UnwindSafe) -> Option<String> {
        let payload = std::panic::catch_unwind(f).err()?;
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
    }

    #[test]
    fn valid_info_passes() {
        plugin_info(" shop ", "1.0.0", &["order.placed", "a:b_c-d.e"]);
        plugin_info("é", "", &["x"]);
        let longest = "a".repeat(255);
        plugin_info(&longest, &longest, &[&longest]);
    }

    #[test]
    fn each_rule_is_named_with_the_value() {
        let long = "a".repeat(256);
        for (name, version, types, words) in [
            ("", "1", &["a"][..], "NAME is empty"),
            (" \t\u{3000}", "1", &["a"][..], "NAME is empty"),
            (long.as_str(), "1", &["a"][..], "NAME is over 255 bytes"),
            ("a\nb", "1", &["a"][..], "NAME has a control character"),
            ("a\u{85}b", "1", &["a"][..], "NAME has a control character"),
            ("shop", long.as_str(), &["a"][..], "version is over 255 bytes"),
            ("shop", "1\u{7f}", &["a"][..], "version has a control"),
            ("shop", "1", &[][..], "EVENT_TYPES is empty"),
            ("shop", "1", &["ok", ""][..], "empty event type"),
            ("shop", "1", &["ok", "not ok"][..], "outside [A-Za-z0-9._:-]: `not ok`"),
            ("shop", "1", &["é"][..], "outside [A-Za-z0-9._:-]: `é`"),
            ("shop", "1", &[long.as_str()][..], "event type in Plugin::EVENT_TYPES is over 255 bytes"),
        ] {
            let got = message(|| plugin_info(name, version, types))
                .unwrap_or_else(|| panic!("{name:?} {version:?} {types:?} passed"));
            assert!(got.contains(words), "{got}");
        }
    }

    #[test]
    fn trimming_and_control_characters_match_std() {
        for s in ["", " a ", "\u{3000}é\u{2029}", "\t\n", "a\u{1f}", "ok"] {
            assert_eq!(trim(s), s.trim());
            assert_eq!(has_control(s), s.chars().any(char::is_control), "{s:?}");
        }
    }

    #[test]
    fn a_long_value_is_cut_at_a_character_boundary() {
        let long = "é".repeat(600);
        let got = message(|| event_type(&long)).expect("refused");
        assert!(got.len() <= MESSAGE_BYTES, "{}", got.len());
        assert!(got.ends_with('`'));
    }
}
