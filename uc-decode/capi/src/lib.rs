//! # uc-decode-capi: the uc pack v0.3/v0.4 decoder as a C library
//!
//! Builds `libuc_decode_capi.a` (static) and `libuc_decode_capi.so` / `.dylib` / `.dll` (shared)
//! exporting the C ABI of [`uc_decode::capi`], declared in `include/uc_decode.h`. The functions are
//! defined in `uc-decode` (feature `capi`, usable on `no_std` targets too); this package only adds
//! the library crate types and the `std` feature (runtime AVX2 detection).
//!
//! ```sh
//! cargo build --release -p uc-decode-capi
//! cc -std=c99 -I uc-decode/capi/include prog.c target/release/libuc_decode_capi.a -lpthread -ldl -lm
//! ```
#![no_std]

pub use uc_decode::capi::*;
