//! The names of the checks of spec. Each check a verifier reports has a stable name (the
//! receipts' `check` member and the text report print it) and the spec clause whose rule it enforces,
//! both taken from the table of in `spec/uc-pack-v0.4.md`; a test holds this list and that
//! table equal.

use core::fmt;

macro_rules! check_names {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $clause:literal; )*) => {
        /// A check of. The names are stable across versions: receipts and scripts use them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum CheckName {
            $( $(#[$doc])* $variant, )*
        }

        impl CheckName {
            /// Every check, in the order of the table of.
            pub const ALL: &'static [CheckName] = &[$(CheckName::$variant,)*];

            /// Stable dotted name (receipts, text report).
            pub const fn name(self) -> &'static str {
                match self { $(CheckName::$variant => $name,)* }
            }

            /// The spec clause (`spec/uc-pack-v0.4.md`) that the check enforces: the first clause its
            /// row of the table cites.
            pub const fn clause(self) -> &'static str {
                match self { $(CheckName::$variant => $clause,)* }
            }

            /// Looks a check up by its stable name.
            pub fn from_name(name: &str) -> Option<CheckName> {
                match name { $($name => Some(CheckName::$variant),)* _ => None }
            }
        }
    };
}

check_names! {
    /// The manifest exists and the safetensors files are one `model.safetensors` or a complete set
    /// of shards with the index.
    PackLayout = "pack.layout", "R-2.1";
    /// The manifest is a regular file of bounded size, UTF-8, JSON without duplicate member names.
    ManifestJson = "manifest.json", "R-12.1";
    /// Every REQUIRED manifest member is present with its type and value constraints.
    ManifestSchema = "manifest.schema", "R-12.2";
    /// Every entry of `files` exists as a regular file with the listed size and SHA-256.
    FileDigest = "file.digest", "R-12.4";
    /// No entry of the pack is missing from `files`.
    FileUnlisted = "file.unlisted", "R-12.4";
    /// The top-level `size_bytes` is the sum of the listed sizes.
    ManifestSizeBytes = "manifest.size_bytes", "R-12.4";
    /// Every safetensors header is well formed and its tensors cover the data area exactly.
    SafetensorsHeader = "safetensors.header", "R-3.1";
    /// The shard index of a sharded pack matches the shards.
    Index = "index", "R-12.9";
    /// Tensors are 64-aligned, padding tensors are well formed, no name appears in two files.
    SafetensorsLayout = "safetensors.layout", "R-3.5";
    /// A file holding records declares a supported `uc.format`.
    SafetensorsMetadata = "safetensors.metadata", "R-3.2";
    /// Every record is a valid record of its tensor's length and decodes completely.
    TensorRecord = "tensor.record", "R-3.3";
    /// Every record matches its manifest entry and every entry names a record.
    TensorManifest = "tensor.manifest", "R-12.6";
    /// `bpw_accounting` and `bpw` match the sums over the records.
    Bpw = "bpw", "R-12.7";
    /// With a source model: each record's tensor compares with the source tensor.
    Against = "against", "R-12.6";
    /// With a source model: the source's safetensors files can be read.
    AgainstSource = "against.source", "R-12.6";
    /// With a signature: the OMS bundle is well formed and its signature verifies with the key or
    /// through the certificate chain given.
    Signature = "signature", "R-12.13";
    /// With a signature: every file of the pack (manifest included) is signed with its SHA-256, and
    /// no signed file is missing.
    SignatureFiles = "signature.files", "R-12.13";
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl PartialEq<str> for CheckName {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for CheckName {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl serde::Serialize for CheckName {
    /// A check serialises as its stable name (receipts).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::CheckName;
    use std::collections::BTreeSet;

    const SPEC: &str = include_str!("../../spec/uc-pack-v0.4.md");

    /// The rows of the table that follows the `**R-12.11**` paragraph: (first column, whole row).
    fn r12_11_rows(spec: &str) -> Vec<(&str, &str)> {
        let start = spec.find("**R-12.11**").expect("the spec has a clause R-12.11");
        let mut lines = spec[start..].lines().skip_while(|l| !l.starts_with('|'));
        let head = lines.next().expect("R-12.11 is followed by a table");
        assert!(
            head.contains("check") && head.contains("rule"),
            "unexpected table head {head:?}"
        );
        let rule = lines.next().expect("the table has a separator line");
        assert!(rule.starts_with("|---"), "unexpected separator {rule:?}");
        lines
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let first = l.trim_start_matches('|').split('|').next().unwrap_or_default();
                (first, l)
            })
            .collect()
    }

    /// The backticked names of a cell.
    fn backticked(cell: &str) -> Vec<&str> {
        cell.split('`').skip(1).step_by(2).collect()
    }

    /// Whether `text` cites `clause` as a whole clause number (`R-12.1` is not cited by `R-12.11`).
    fn cites(text: &str, clause: &str) -> bool {
        text.match_indices(clause).any(|(i, _)| {
            let rest = &text.as_bytes()[i + clause.len()..];
            let before_ok = i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric();
            let after_ok = match rest {
                [d, ..] if d.is_ascii_digit() => false,
                [b'.', d, ..] if d.is_ascii_digit() => false,
                _ => true,
            };
            before_ok && after_ok
        })
    }

    /// Compares the enum with the table of `spec`; the error says what differs.
    fn compare(spec: &str) -> Result<(), String> {
        let rows = r12_11_rows(spec);
        let mut problems = Vec::new();
        let mut in_spec = BTreeSet::new();
        for (first, row) in rows {
            let names = backticked(first);
            if names.is_empty() {
                problems.push(format!("a row of the R-12.11 table names no check: {row:?}"));
            }
            for name in names {
                if !in_spec.insert(name) {
                    problems.push(format!("{name:?} appears twice in the R-12.11 table"));
                }
                match CheckName::from_name(name) {
                    None => problems.push(format!("the spec's check {name:?} is not a CheckName")),
                    Some(c) if c.clause() != "R-12.11" && !cites(row, c.clause()) => {
                        problems.push(format!("the row of {name:?} does not cite {}", c.clause()))
                    }
                    Some(_) => {}
                }
            }
        }
        for c in CheckName::ALL {
            if !in_spec.contains(c.name()) {
                problems.push(format!("CheckName {c:?} ({:?}) is not in the R-12.11 table", c.name()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    #[test]
    fn check_names_are_the_r12_11_table() {
        compare(SPEC).unwrap();
        // Same order as the table, too.
        let in_order: Vec<&str> = r12_11_rows(SPEC)
            .into_iter()
            .flat_map(|(first, _)| backticked(first))
            .collect();
        let ours: Vec<&str> = CheckName::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(in_order, ours);
    }

    #[test]
    fn the_table_comparison_sees_a_name_added_or_removed_on_the_spec_side() {
        let added = SPEC.replacen(
            "| `bpw` |",
            "| `bpw.extra` | a check the enum lacks (R-12.7) |\n| `bpw` |",
            1,
        );
        assert_ne!(added, SPEC);
        assert!(
            compare(&added)
                .unwrap_err()
                .contains("\"bpw.extra\" is not a CheckName")
        );
        let removed = SPEC.replacen("| `against`, `against.source` |", "| `against` |", 1);
        assert_ne!(removed, SPEC);
        assert!(compare(&removed).unwrap_err().contains("AgainstSource"));
        let uncited = SPEC.replacen("(R-12.7) |", "(R-12.70) |", 1);
        assert_ne!(uncited, SPEC);
        assert!(compare(&uncited).unwrap_err().contains("does not cite R-12.7"));
    }

    #[test]
    fn names_and_clauses_are_well_formed() {
        let names: BTreeSet<_> = CheckName::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), CheckName::ALL.len(), "duplicate names");
        for c in CheckName::ALL {
            assert_eq!(CheckName::from_name(c.name()), Some(*c));
            assert_eq!(c.to_string(), c.name());
            assert!(*c == c.name());
            let clause = c.clause().strip_prefix("R-").expect("a clause starts with R-");
            let (s, n) = clause.split_once('.').expect("R-<section>.<n>");
            assert!(s.parse::<u32>().is_ok() && n.parse::<u32>().is_ok(), "{clause}");
            assert!(
                SPEC.contains(&format!("**{}**", c.clause())),
                "{} is not a clause of the spec",
                c.clause()
            );
        }
        assert_eq!(CheckName::from_name("no.such.check"), None);
        assert!(cites("(R-12.1)", "R-12.1") && cites("R-12.1.", "R-12.1") && cites("R-12.1 to R-12.8", "R-12.1"));
        assert!(!cites("(R-12.11)", "R-12.1") && !cites("R-12.1.2", "R-12.1") && !cites("XR-12.1", "R-12.1"));
    }
}
