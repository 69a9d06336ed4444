//! Names of a pack's files (spec ): the single safetensors file, the shards and their index.

/// File name of the index of a sharded pack.
pub const INDEX_NAME: &str = "model.safetensors.index.json";
/// File name of a single-file pack's tensors.
pub const SINGLE_NAME: &str = "model.safetensors";

/// The shard file name of index `i` (1-based) of `n`.
pub fn shard_name(i: u32, n: u32) -> String {
    format!("model-{i:05}-of-{n:05}.safetensors")
}

/// Parses `model-XXXXX-of-YYYYY.safetensors` into `(i, n)` with `1 ≤ i ≤ n`.
pub fn shard_index(name: &str) -> Option<(u32, u32)> {
    let core = name.strip_prefix("model-")?.strip_suffix(".safetensors")?;
    let (a, b) = core.split_once("-of-")?;
    let num = |s: &str| -> Option<u32> {
        if s.len() == 5 && s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (i, n) = (num(a)?, num(b)?);
    (1..=n).contains(&i).then_some((i, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_round_trip_and_reject_near_misses() {
        assert_eq!(shard_name(2, 7), "model-00002-of-00007.safetensors");
        assert_eq!(shard_index(&shard_name(2, 7)), Some((2, 7)));
        for bad in [
            "model-00000-of-00002.safetensors",
            "model-00003-of-00002.safetensors",
            "model-1-of-2.safetensors",
            "model-00001-of-00002.safetensor",
        ] {
            assert_eq!(shard_index(bad), None, "{bad}");
        }
    }
}
