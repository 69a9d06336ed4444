//! Which tensors are quantized, and the choices the allocator has (the defaults of `uc compress`).

use crate::source::SourceTensor;
use uc_pack::Dtype;

/// Bit widths the allocator may choose from.
pub const DEFAULT_BITS: [u8; 7] = [2, 3, 4, 5, 6, 7, 8];
/// Overlay ranks the allocator may choose from.
pub const DEFAULT_RANKS: [u32; 5] = [0, 8, 16, 32, 64];
/// Name patterns kept verbatim (norms).
pub const DEFAULT_SKIP: [&str; 1] = ["*norm*"];
/// Name patterns of the *outer* tensors: embeddings and the output head. They are quantized at a
/// fixed width outside the bpw budget ([`DEFAULT_OUTER_BITS`], as llama.cpp's `_M` mixes keep
/// them at Q6_K), or kept verbatim; a tied embedding is one tensor, one record, used both ways.
pub const OUTER: [&str; 5] = ["*embed*", "*lm_head*", "*wte*", "*wpe*", "*position*"];
/// Code width of the outer tensors by default.
pub const DEFAULT_OUTER_BITS: u8 = 6;
/// Bits-per-weight budget of `uc compress` (and `ucpack.compress`) when none is given.
pub const DEFAULT_BPW: f64 = 5.0;
/// Method version recorded in the manifest by default.
pub const DEFAULT_METHOD_VERSION: &str = "gsq-1";

/// How each weight's error is weighed when the grid is fitted and the scales searched (`uc
/// compress --importance`, `ucpack.compress(importance=...)`), once resolved against whether the
/// run is calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// By the input features' mean squares on the calibration tokens (needs calibration).
    Activations,
    /// By the squares of the input normalisation's weights (data-free).
    Norms,
    /// Every weight alike.
    None,
}

/// Why an importance mode was refused ([`Importance::resolve`]); each front end words it with
/// its own option names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportanceError {
    /// `activations` in a data-free run.
    NeedsCalibration,
    /// `norms` in a calibrated run.
    DataFreeOnly,
    /// Not one of the four names.
    Unknown(String),
}

impl Importance {
    /// Resolves `auto`, `activations`, `norms` or `none`: `auto` is activations in a calibrated
    /// run and none in a data-free one; activations without calibration and norms with it are
    /// refused.
    pub fn resolve(name: &str, calibrated: bool) -> Result<Importance, ImportanceError> {
        match (name, calibrated) {
            ("auto", true) | ("activations", true) => Ok(Importance::Activations),
            ("auto", false) | ("none", _) => Ok(Importance::None),
            ("norms", false) => Ok(Importance::Norms),
            ("activations", false) => Err(ImportanceError::NeedsCalibration),
            ("norms", true) => Err(ImportanceError::DataFreeOnly),
            (other, _) => Err(ImportanceError::Unknown(other.to_string())),
        }
    }
}

/// Tensors with fewer weights than this stay verbatim (a record's fixed overhead would dominate).
pub const MIN_QUANTIZED_WEIGHTS: u64 = 4096;

/// Matches `*` (any run) and `?` (one char) glob patterns.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    // Iterative with one backtrack point: linear in practice, no recursion depth to exhaust.
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == '?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The normalisation weight that scales the input features of the linear weight `name`, in the
/// Hugging Face naming of the Llama family (Llama, Mistral, Qwen2, SmolLM): the attention
/// projections `q/k/v_proj` read `input_layernorm`'s output, the MLP's `gate/up_proj`
/// `post_attention_layernorm`'s. Feature `j` of an RMSNorm's output is `γ_j · x̂_j` with `x̂` of
/// unit mean square, so `γ_j²` is a data-free estimate of the input's second moment `E[x_j²]`.
/// `None` for every other tensor (`o_proj` and `down_proj` read unnormalised activations).
pub fn input_norm_of(name: &str) -> Option<String> {
    let (layer, rest) = name.split_once(".self_attn.").or_else(|| name.split_once(".mlp."))?;
    let norm = match rest {
        "q_proj.weight" | "k_proj.weight" | "v_proj.weight" => "input_layernorm",
        "gate_proj.weight" | "up_proj.weight" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("{layer}.{norm}.weight"))
}

/// Whether `name` is an outer tensor (embedding or output head, [`OUTER`]).
pub fn is_outer(name: &str) -> bool {
    OUTER.iter().any(|p| glob_match(p, name))
}

/// Whether a tensor of this name, dtype and shape is quantized under the default policy plus
/// `skip`: 2-D F32/F16/BF16 weights with at least [`MIN_QUANTIZED_WEIGHTS`] elements whose names
/// match no skip pattern, and that are not outer tensors unless `outer` ([`is_outer`]).
pub fn is_quantized_parts(name: &str, dtype: Dtype, shape: &[u64], skip: &[String], outer: bool) -> bool {
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .unwrap_or(u64::MAX);
    shape.len() == 2
        && matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::Bf16)
        && numel >= MIN_QUANTIZED_WEIGHTS
        && !DEFAULT_SKIP.iter().any(|p| glob_match(p, name))
        && (outer || !is_outer(name))
        && !skip.iter().any(|p| glob_match(p, name))
}

/// [`is_quantized_parts`] of a source tensor.
pub fn is_quantized(t: &SourceTensor, skip: &[String], outer: bool) -> bool {
    is_quantized_parts(&t.name, t.dtype, &t.shape, skip, outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_norms_of_llama_projections() {
        let n = |s: &str| input_norm_of(s);
        assert_eq!(
            n("model.layers.3.self_attn.q_proj.weight").as_deref(),
            Some("model.layers.3.input_layernorm.weight")
        );
        assert_eq!(
            n("model.layers.3.self_attn.v_proj.weight").as_deref(),
            Some("model.layers.3.input_layernorm.weight")
        );
        assert_eq!(
            n("model.layers.12.mlp.up_proj.weight").as_deref(),
            Some("model.layers.12.post_attention_layernorm.weight")
        );
        assert_eq!(n("model.layers.3.self_attn.o_proj.weight"), None);
        assert_eq!(n("model.layers.3.mlp.down_proj.weight"), None);
        assert_eq!(n("bert.encoder.layer.0.attention.self.query.weight"), None);
        assert_eq!(n("model.layers.3.self_attn.q_proj.bias"), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*embed*", "model.embed_tokens.weight"));
        assert!(glob_match("layer.?.w", "layer.3.w"));
        assert!(!glob_match("layer.?.w", "layer.13.w"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "ac"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("**", "x"));
        // Many stars against a long name: no exponential backtracking.
        let name = "a".repeat(5000);
        assert!(!glob_match(&format!("{}b", "*a".repeat(50)), &name));
    }
}
