//! The hand-written header `include/uc_decode.h` agrees with the Rust definitions in
//! `uc-decode/src/capi.rs`: the same functions with the same signatures, the error codes of
//! uc-format's `ErrorKind` (name, negated code, clause), and the same constants.

use std::collections::{BTreeMap, BTreeSet};

use uc_decode::ErrorKind;

const HEADER: &str = include_str!("../include/uc_decode.h");
const CAPI_RS: &str = include_str!("../../src/capi.rs");

/// The header without comments.
fn strip_c_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("*/").expect("unterminated comment") + i + 2;
        out.push(' ');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whitespace-normalised C type: `const uint8_t*` and `const uint8_t *` both give "const uint8_t *".
fn norm(t: &str) -> String {
    t.replace('*', " * ").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_ident(t: &str) -> bool {
    t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !t.is_empty()
}

/// `name -> (return type, parameter types)` of every `uc_*` function declared in the header.
fn header_functions() -> BTreeMap<String, (String, Vec<String>)> {
    let code: String = strip_c_comments(HEADER)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut fns = BTreeMap::new();
    for stmt in code.split([';', '{', '}']) {
        let Some(open) = stmt.find('(') else { continue };
        let head = norm(&stmt[..open]);
        let mut toks: Vec<&str> = head.split(' ').collect();
        let name = toks.pop().unwrap().to_string();
        if !name.starts_with("uc_") {
            continue;
        }
        let close = stmt.rfind(')').expect("unbalanced parentheses");
        let params: Vec<String> = stmt[open + 1..close]
            .split(',')
            .map(norm)
            .filter(|p| p != "void")
            .map(|p| {
                // Drop the parameter name: the last token, when the type is more than one token.
                let mut t: Vec<&str> = p.split(' ').collect();
                assert!(
                    t.len() >= 2 && is_ident(t[t.len() - 1]),
                    "{name}: unnamed parameter `{p}`"
                );
                t.pop();
                t.join(" ")
            })
            .collect();
        let prev = fns.insert(name.clone(), (toks.join(" "), params));
        assert!(prev.is_none(), "{name} declared twice in the header");
    }
    fns
}

/// The C spelling of a Rust FFI type of capi.rs.
fn c_type(rust: &str) -> String {
    let rust = rust.trim();
    if let Some(inner) = rust.strip_prefix("*const ") {
        return norm(&format!("const {} *", c_type(inner)));
    }
    if let Some(inner) = rust.strip_prefix("*mut ") {
        return norm(&format!("{} *", c_type(inner)));
    }
    match rust {
        "u8" => "uint8_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "i32" => "int32_t",
        "usize" => "size_t",
        "f32" => "float",
        "c_char" => "char",
        "uc_record" => "uc_record",
        "" => "void",
        other => panic!("no C spelling for the Rust type `{other}`"),
    }
    .to_string()
}

/// `name -> (return type, parameter types)` of every `extern "C" fn uc_*` of capi.rs, in C spelling.
fn rust_functions() -> BTreeMap<String, (String, Vec<String>)> {
    let mut fns = BTreeMap::new();
    let marker = "extern \"C\" fn ";
    let mut rest = CAPI_RS;
    while let Some(i) = rest.find(marker) {
        rest = &rest[i + marker.len()..];
        let open = rest.find('(').unwrap();
        let name = rest[..open].trim().to_string();
        let close = rest.find(')').unwrap();
        let params = rest[open + 1..close]
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| c_type(p.split_once(':').expect("parameter without a type").1))
            .collect();
        let body = rest.find('{').unwrap();
        let ret = rest[close + 1..body].trim().strip_prefix("->").unwrap_or("");
        assert!(name.starts_with("uc_"), "exported function `{name}` is not named uc_*");
        let prev = fns.insert(name.clone(), (c_type(ret), params));
        assert!(prev.is_none(), "{name} defined twice");
        rest = &rest[body..];
    }
    fns
}

/// `#define UC_* value` lines: name -> (value, comment after the value).
fn header_defines() -> BTreeMap<String, (i64, String)> {
    let mut defs = BTreeMap::new();
    for line in HEADER.lines() {
        let Some(rest) = line.trim().strip_prefix("#define ") else {
            continue;
        };
        let mut parts = rest.splitn(2, char::is_whitespace);
        let name = parts.next().unwrap();
        let rest = parts.next().unwrap_or("").trim();
        if !name.starts_with("UC_") || rest.is_empty() {
            continue;
        }
        let (value, comment) = rest.split_once("/*").unwrap_or((rest, ""));
        let v = value.trim().trim_start_matches('(').trim_end_matches(')');
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        let value = parsed.unwrap_or_else(|_| panic!("{name}: value `{v}` is not an integer"));
        defs.insert(
            name.to_string(),
            (value, comment.trim_end_matches("*/").trim().to_string()),
        );
    }
    defs
}

#[test]
fn header_declares_exactly_the_rust_functions_with_the_same_signatures() {
    let h = header_functions();
    let r = rust_functions();
    let hs: BTreeSet<&String> = h.keys().collect();
    let rs: BTreeSet<&String> = r.keys().collect();
    assert_eq!(hs, rs, "functions of uc_decode.h (left) vs capi.rs (right)");
    assert!(rs.len() >= 19, "only {} functions found in capi.rs", rs.len());
    for (name, sig) in &r {
        assert_eq!(&h[name], sig, "{name}: header (left) vs Rust (right) signature");
    }
}

#[test]
fn validation_error_codes_are_the_negated_error_kind_codes() {
    let defs = header_defines();
    let mut expected = BTreeSet::new();
    for &k in ErrorKind::ALL {
        let name = format!("UC_ERR_{}", k.name().to_ascii_uppercase());
        let (value, comment) = defs
            .get(&name)
            .unwrap_or_else(|| panic!("{name} is missing from uc_decode.h"));
        assert_eq!(*value, -i64::from(k.code()), "{name}");
        let clause = comment.split([' ', ':']).next().unwrap_or("");
        assert_eq!(clause, k.clause(), "{name}: clause in the comment");
        expected.insert(name);
    }
    let caller = [
        ("UC_ERR_OUTPUT_LENGTH", uc_decode_capi::UC_ERR_OUTPUT_LENGTH),
        ("UC_ERR_OUT_OF_RANGE", uc_decode_capi::UC_ERR_OUT_OF_RANGE),
        ("UC_ERR_NULL", uc_decode_capi::UC_ERR_NULL),
        ("UC_ERR_BAD_HANDLE", uc_decode_capi::UC_ERR_BAD_HANDLE),
    ];
    for (name, value) in caller {
        assert_eq!(defs.get(name).map(|d| d.0), Some(i64::from(value)), "{name}");
        expected.insert(name.to_string());
    }
    let declared: BTreeSet<String> = defs.keys().filter(|k| k.starts_with("UC_ERR_")).cloned().collect();
    assert_eq!(declared, expected, "UC_ERR_* of the header (left) vs Rust (right)");
    let values: BTreeSet<i64> = defs
        .iter()
        .filter(|(k, _)| k.starts_with("UC_ERR_"))
        .map(|(_, d)| d.0)
        .collect();
    assert_eq!(values.len(), expected.len(), "two error codes share a value");
}

#[test]
fn constants_match() {
    let defs = header_defines();
    let get = |n: &str| defs.get(n).unwrap_or_else(|| panic!("{n} missing from uc_decode.h")).0;
    assert_eq!(get("UC_OK"), i64::from(uc_decode_capi::UC_OK));
    assert_eq!(get("UC_RECORD_WORDS"), uc_decode_capi::UC_RECORD_WORDS as i64);
    assert_eq!(get("UC_ABI_VERSION"), i64::from(uc_decode_capi::UC_ABI_VERSION));
    assert_eq!(get("UC_ABI_VERSION"), i64::from(uc_decode_capi::uc_abi_version()));
    assert!(HEADER.contains("uint64_t opaque[UC_RECORD_WORDS];"), "uc_record layout");
}
