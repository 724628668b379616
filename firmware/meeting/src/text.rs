//! Text from outside (a participant's display name, a room name, anything a
//! server or a visitor chose) made safe to show: in a log line, on the page,
//! on the room screen.
//!
//! [`clean`] replaces what could forge or hide text: control characters
//! (a newline starts a fake log line, ESC starts an ANSI sequence), and the
//! invisible and direction-changing characters of Unicode (zero-width
//! characters, bidi embeddings, overrides and isolates: Unicode TR#9, the
//! "Trojan Source" trick of CVE-2021-42574). Each becomes U+FFFD, so a
//! cleaned name still shows that something was there.

/// Longest cleaned text, in characters; longer text is cut and ends in `…`.
pub const MAX_CHARS: usize = 64;

/// Whether `c` is invisible or changes the direction of the text around it.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}' // Arabic letter mark
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
        | '\u{180E}' // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}' // zero-width space, (non-)joiner, LRM, RLM
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}' // bidi isolates, deprecated format characters
        | '\u{FEFF}' // zero-width no-break space (BOM)
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
        | '\u{E0000}'..='\u{E007F}' // tags
    )
}

/// `text` with control, invisible and direction-changing characters
/// replaced by U+FFFD and cut to `max_chars` characters.
pub fn clean_to(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        out.push(if c.is_control() || is_invisible(c) { '\u{FFFD}' } else { c });
    }
    out
}

/// [`clean_to`] with [`MAX_CHARS`].
pub fn clean(text: &str) -> String {
    clean_to(text, MAX_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_log_lines_and_escapes_are_neutralised() {
        let name = "Ana\n2026-12-01T00:00:00Z  INFO cloakroomd: admin paired\u{1b}[2J";
        let cleaned = clean_to(name, 200);
        assert!(!cleaned.contains('\n') && !cleaned.contains('\u{1b}'), "{cleaned:?}");
        assert!(cleaned.starts_with("Ana\u{FFFD}2026"));
    }

    #[test]
    fn bidi_and_zero_width_characters_are_shown_as_replacements() {
        assert_eq!(clean("abc\u{202E}fdp.exe"), "abc\u{FFFD}fdp.exe");
        assert_eq!(clean("a\u{200B}b\u{2066}c\u{FEFF}"), "a\u{FFFD}b\u{FFFD}c\u{FFFD}");
        assert_eq!(clean("Zoë Åberg 山田"), "Zoë Åberg 山田", "ordinary letters stay");
    }

    #[test]
    fn long_text_is_cut() {
        let long = "x".repeat(MAX_CHARS + 10);
        let cleaned = clean(&long);
        assert_eq!(cleaned.chars().count(), MAX_CHARS + 1);
        assert!(cleaned.ends_with('…'));
    }
}
