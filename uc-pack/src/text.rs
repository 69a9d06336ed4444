//! Untrusted strings on a terminal. Tensor and file names, manifest values and error messages come
//! from the files being read; printed raw, a name holding terminal escape sequences could rewrite
//! what an auditor sees (erase a FAIL line, print a fake verdict). Every command prints such strings
//! through [`esc`] (text) or [`json_safe`] (JSON).

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is: C0 and C1 control characters, DEL, and the
/// bidirectional overrides and isolates (which reorder what is displayed).
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as `\u{XX}` (and `\` as `\\` when anything is escaped,
/// so that the escaping cannot be forged). Unchanged, without a copy, when there is nothing to
/// escape.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`esc`] of a path's display form.
pub fn esc_path(p: &std::path::Path) -> String {
    esc(&p.display().to_string()).into_owned()
}

/// Serialised JSON made safe for a terminal: serde_json already escapes C0 controls, this also
/// escapes DEL, C1 controls and bidirectional controls (as `\uXXXX`, which JSON readers decode
/// back to the same string).
pub fn json_safe(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe(c) && c != '\n' && c != '\t' && c != '\r' {
            // Outside strings serde_json emits only spaces and newlines, so every such character is
            // inside a string, where \uXXXX is its exact encoding (all are in the BMP).
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_cannot_reach_the_terminal() {
        assert!(matches!(esc("layers.0.mlp.weight"), Cow::Borrowed(_)));
        let forged = "x\u{1b}[2K\rVERIFIED: 12 checks passed\u{9b}1A\u{202e}";
        let e = esc(forged);
        assert!(!e.chars().any(is_unsafe), "{e}");
        assert_eq!(e, "x\\u{1b}[2K\\u{d}VERIFIED: 12 checks passed\\u{9b}1A\\u{202e}");
        assert_eq!(esc("a\\b\u{7}"), "a\\\\b\\u{7}");
        let j = serde_json::to_string(&serde_json::json!({"name": forged})).unwrap();
        let safe = json_safe(&j);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], forged);
    }
}
