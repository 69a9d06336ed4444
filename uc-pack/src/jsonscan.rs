//! A second look at JSON text that `serde_json` has already accepted: finds keys that appear twice
//! in one object (which `serde_json::Value` would silently merge, keeping the last) and the byte
//! offsets of the top-level keys, so that errors can name where in a file they are.

use std::collections::{BTreeMap, HashSet};

/// A key that appears twice in one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Byte offset of the second occurrence (its opening quote).
    pub offset: usize,
    /// The key, unescaped.
    pub key: String,
}

enum Frame {
    Object { keys: HashSet<String>, want_key: bool },
    Array,
}

/// Scans `text` (valid JSON) and returns the byte offset of each top-level object key (its
/// opening quote), or the first duplicate key of any object at any depth.
pub fn scan(text: &str) -> Result<BTreeMap<String, usize>, DuplicateKey> {
    let b = text.as_bytes();
    let mut top = BTreeMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => stack.push(Frame::Object {
                keys: HashSet::new(),
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(Frame::Object { want_key, .. }) = stack.last_mut() {
                    *want_key = true;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(b.len());
                let depth = stack.len();
                if let Some(Frame::Object { keys, want_key }) = stack.last_mut() {
                    if *want_key {
                        *want_key = false;
                        let raw = &text[start..end];
                        let key: String = serde_json::from_str(raw).unwrap_or_else(|_| raw.to_string());
                        if !keys.insert(key.clone()) {
                            return Err(DuplicateKey { offset: start, key });
                        }
                        if depth == 1 {
                            top.insert(key, start);
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(top)
}

/// Converts `serde_json`'s one-based line and column of an error into a byte offset in `text`
/// (clamped to the text's length).
pub fn line_col_to_offset(text: &str, line: usize, column: usize) -> u64 {
    let mut off = 0usize;
    for (n, l) in text.split_inclusive('\n').enumerate() {
        if n + 1 == line {
            return (off + column.saturating_sub(1)).min(text.len()) as u64;
        }
        off += l.len();
    }
    text.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicates_at_any_depth_and_top_level_offsets() {
        let t = r#"{"a":{"x":1,"y":[{"k":1,"k":2}]},"b\"c":"a,b"}"#;
        let e = scan(t).unwrap_err();
        assert_eq!(e.key, "k");
        assert_eq!(&t[e.offset..e.offset + 3], "\"k\"");
        let t = r#"{"a":{"x":1},"b\"c":"{\"a\":1}", "d" : [1,"a"]}"#;
        let top = scan(t).unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top["a"], 1);
        assert_eq!(&t[top["b\"c"]..top["b\"c"] + 1], "\"");
        assert!(
            scan(r#"{"\u0061":1,"a":2}"#).is_err(),
            "escaped spelling of the same key"
        );
        assert_eq!(line_col_to_offset("ab\ncd", 2, 2), 4);
        assert_eq!(line_col_to_offset("ab", 9, 9), 2);
    }
}
