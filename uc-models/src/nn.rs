//! The numeric building blocks of the forward passes: where weights come from ([`Get`]), a
//! linear map, softmax.

use candle_core::Tensor;
use std::collections::HashMap;

/// Receives the input of every linear map of a layer: (weight name, input `[.., in]`).
pub type Tap<'a> = Option<&'a mut dyn FnMut(&str, &Tensor)>;

/// A source of named weights for a forward pass.
pub trait Get {
    /// The tensor called `name` (f32, on the CPU).
    fn get(&self, name: &str) -> candle_core::Result<Tensor>;
    /// Whether the model has a tensor called `name` (optional biases and norms).
    fn has(&self, name: &str) -> bool;
}

/// All weights of a model in memory, as f32.
#[derive(Debug, Default)]
pub struct Weights {
    /// Name → tensor.
    pub map: HashMap<String, Tensor>,
}

impl Get for Weights {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        self.map
            .get(name)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("the model has no tensor {name}")))
    }
    fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// `x · Wᵀ (+ b)` for `x` of shape `[..., in]` and `W` of shape `[out, in]`.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let inner = *dims.last().unwrap_or(&1);
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = x.reshape((rows, inner))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = w.dim(0)?;
    y.reshape(out)
}

/// Softmax over the last dimension (the shift by the maximum is detached: it cancels).
pub(crate) fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(candle_core::D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(candle_core::D::Minus1)?;
    e.broadcast_div(&s)
}

/// Log-softmax over the last dimension (the shift by the maximum is detached: it cancels).
pub(crate) fn log_softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(candle_core::D::Minus1)?.detach();
    let z = x.broadcast_sub(&m)?;
    let lse = z.exp()?.sum_keepdim(candle_core::D::Minus1)?.log()?;
    z.broadcast_sub(&lse)
}
