//! A strict, bounded pre-scan of a GGUF file's header, run before candle's reader sees it.
//!
//! Written by hand, not with a library, because the job is to refuse hostile input before any
//! library allocates from its length fields: candle's `Content::read` trusts every count (a 233 kB
//! file can make it allocate gigabytes), divides by `general.alignment` (0 panics) and lets a
//! duplicate tensor name replace the first. This scan walks the same bytes (GGUF v1 to v3: magic,
//! version, counts, metadata key/value pairs, tensor infos) with every length checked against the
//! bytes that remain in the file and against the caps below, before anything is allocated, and
//! reports the first problem with its byte offset.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufReader, Read, Seek, SeekFrom};

/// Most metadata key/value pairs or tensors accepted.
pub const MAX_COUNT: u64 = 1 << 20;
/// Most elements of one metadata array (a vocabulary of 256 k tokens and its merges fit).
pub const MAX_ARRAY: u64 = 1 << 23;
/// Longest string (a key, a tensor name, a metadata value such as a chat template).
pub const MAX_STRING: u64 = 1 << 24;
/// Deepest nesting of arrays.
pub const MAX_DEPTH: u32 = 3;
/// Most dimensions of a tensor (ggml's GGML_MAX_DIMS).
pub const MAX_DIMS: u32 = 4;

/// A problem found by [`scan`]: what and where (file offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset in the file.
    pub offset: u64,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte offset {}: {}", self.offset, self.msg)
    }
}

/// What the scan learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// GGUF version (1 to 3).
    pub version: u32,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Number of metadata pairs.
    pub kv_count: u64,
    /// `general.alignment` when present.
    pub alignment: Option<u32>,
}

struct Cursor<R: Read> {
    r: R,
    pos: u64,
    len: u64,
    version: u32,
}

impl<R: Read> Cursor<R> {
    fn err(&self, msg: impl Into<String>) -> ScanError {
        ScanError {
            offset: self.pos,
            msg: msg.into(),
        }
    }

    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], ScanError> {
        if self.left() < N as u64 {
            return Err(self.err(format!("truncated: {N} more bytes expected, {} left", self.left())));
        }
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|e| self.err(format!("read failed: {e}")))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, ScanError> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, ScanError> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }

    /// A length or count: u32 in GGUF v1, u64 after.
    fn len_field(&mut self) -> Result<u64, ScanError> {
        if self.version == 1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }

    fn skip(&mut self, n: u64) -> Result<(), ScanError> {
        if n > self.left() {
            return Err(self.err(format!("{n} bytes declared, only {} left in the file", self.left())));
        }
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
            .map_err(|e| self.err(format!("read failed: {e}")))?;
        if copied != n {
            return Err(self.err("truncated"));
        }
        self.pos += n;
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<String, ScanError> {
        let at = self.pos;
        let n = self.len_field()?;
        if n > MAX_STRING || n > self.left() {
            return Err(ScanError {
                offset: at,
                msg: format!(
                    "{what}: string of {n} bytes (at most {MAX_STRING}, and {} left)",
                    self.left()
                ),
            });
        }
        let mut b = vec![0u8; n as usize];
        self.r
            .read_exact(&mut b)
            .map_err(|e| self.err(format!("read failed: {e}")))?;
        self.pos += n;
        // As candle's reader does (strings "are supposed to be non-null terminated but in practice
        // this happens"): trailing NULs are dropped, so that this scan and the reader behind it
        // see the same keys and names (a key `general.alignment\0` is `general.alignment`).
        while b.last() == Some(&0) {
            b.pop();
        }
        String::from_utf8(b).map_err(|_| ScanError {
            offset: at,
            msg: format!("{what}: not UTF-8"),
        })
    }

    fn skip_string(&mut self, what: &str) -> Result<(), ScanError> {
        let at = self.pos;
        let n = self.len_field()?;
        if n > MAX_STRING {
            return Err(ScanError {
                offset: at,
                msg: format!("{what}: string of {n} bytes (at most {MAX_STRING})"),
            });
        }
        self.skip(n)
    }

    /// Skips one value of type `t`; returns it when it is a u32 (for `general.alignment`).
    fn value(&mut self, t: u32, key: &str, depth: u32) -> Result<Option<u32>, ScanError> {
        let fixed = |t: u32| -> Option<u64> {
            match t {
                0 | 1 | 7 => Some(1),
                2 | 3 => Some(2),
                4..=6 => Some(4),
                10..=12 => Some(8),
                _ => None,
            }
        };
        match t {
            4 => return self.u32().map(Some),
            8 => self.skip_string(key)?,
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(self.err(format!("{key}: arrays nested more than {MAX_DEPTH} deep")));
                }
                let et = self.u32()?;
                let at = self.pos;
                let n = self.len_field()?;
                if n > MAX_ARRAY {
                    return Err(ScanError {
                        offset: at,
                        msg: format!("{key}: array of {n} elements (at most {MAX_ARRAY})"),
                    });
                }
                match fixed(et) {
                    Some(size) => self.skip(n * size)?,
                    None if et == 8 || et == 9 => {
                        // Each element takes at least its length field: a cheap bound first.
                        let min = if self.version == 1 { 4 } else { 8 };
                        if n.saturating_mul(min) > self.left() {
                            return Err(ScanError {
                                offset: at,
                                msg: format!(
                                    "{key}: array of {n} elements cannot fit in the {} bytes left",
                                    self.left()
                                ),
                            });
                        }
                        for _ in 0..n {
                            self.value(et, key, depth + 1)?;
                        }
                    }
                    None => return Err(self.err(format!("{key}: unknown array element type {et}"))),
                }
            }
            t => match fixed(t) {
                Some(size) => self.skip(size)?,
                None => return Err(self.err(format!("{key}: unknown value type {t}"))),
            },
        }
        Ok(None)
    }
}

/// Scans the GGUF header of `file` (`len` bytes). Reads the file from its start.
pub fn scan<R: Read + Seek>(file: &mut R, len: u64) -> Result<Scanned, ScanError> {
    file.seek(SeekFrom::Start(0)).map_err(|e| ScanError {
        offset: 0,
        msg: format!("seek failed: {e}"),
    })?;
    let mut c = Cursor {
        r: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        len,
        version: 3,
    };
    let magic = c.bytes::<4>()?;
    if &magic != b"GGUF" {
        return Err(ScanError {
            offset: 0,
            msg: "not a GGUF file (the magic is not \"GGUF\")".into(),
        });
    }
    let at = c.pos;
    let version = c.u32()?;
    if !(1..=3).contains(&version) {
        return Err(ScanError {
            offset: at,
            msg: format!("GGUF version {version} (1 to 3 are read)"),
        });
    }
    c.version = version;
    let at = c.pos;
    let tensor_count = c.len_field()?;
    let kv_count = c.len_field()?;
    if tensor_count > MAX_COUNT || kv_count > MAX_COUNT {
        return Err(ScanError {
            offset: at,
            msg: format!("{tensor_count} tensors and {kv_count} metadata pairs (at most {MAX_COUNT} each)"),
        });
    }
    let mut alignment = None;
    let mut keys = HashSet::new();
    for _ in 0..kv_count {
        let at = c.pos;
        let key = c.string("metadata key")?;
        let t = c.u32()?;
        let v = c.value(t, &key, 0)?;
        if key == "general.alignment" {
            match (t, v) {
                (4, Some(a)) if a != 0 && a.is_power_of_two() => alignment = Some(a),
                _ => {
                    return Err(ScanError {
                        offset: at,
                        msg: format!(
                            "general.alignment must be a non-zero power of two (u32), got type {t} value {v:?}"
                        ),
                    });
                }
            }
        }
        if !keys.insert(key.clone()) {
            return Err(ScanError {
                offset: at,
                msg: format!("metadata key {key:?} appears twice"),
            });
        }
    }
    let mut names = HashSet::new();
    for _ in 0..tensor_count {
        let at = c.pos;
        let name = c.string("tensor name")?;
        let n_dims = c.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(c.err(format!("tensor {name}: {n_dims} dimensions (1 to {MAX_DIMS})")));
        }
        let mut elems: u64 = 1;
        for _ in 0..n_dims {
            let d = c.len_field()?;
            elems = elems
                .checked_mul(d)
                .ok_or_else(|| c.err(format!("tensor {name}: the element count overflows")))?;
        }
        let _dtype = c.u32()?;
        let _offset = c.u64()?;
        if elems > len.saturating_mul(8) {
            // No ggml type stores more than 8 elements per byte (the densest is 1.5625 bits).
            return Err(c.err(format!(
                "tensor {name}: {elems} elements cannot fit in a {len}-byte file"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(ScanError {
                offset: at,
                msg: format!("tensor name {name:?} appears twice (llama.cpp refuses such files)"),
            });
        }
    }
    Ok(Scanned {
        version,
        tensor_count,
        kv_count,
        alignment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor as Mem;

    fn header(kvs: &[u8], n_kv: u64, tensors: &[u8], n_t: u64) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend(3u32.to_le_bytes());
        v.extend(n_t.to_le_bytes());
        v.extend(n_kv.to_le_bytes());
        v.extend(kvs);
        v.extend(tensors);
        v
    }

    fn s(x: &str) -> Vec<u8> {
        let mut v = (x.len() as u64).to_le_bytes().to_vec();
        v.extend(x.as_bytes());
        v
    }

    fn kv_u32(k: &str, x: u32) -> Vec<u8> {
        let mut v = s(k);
        v.extend(4u32.to_le_bytes());
        v.extend(x.to_le_bytes());
        v
    }

    fn tensor(name: &str, dims: &[u64]) -> Vec<u8> {
        let mut v = s(name);
        v.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            v.extend(d.to_le_bytes());
        }
        v.extend(0u32.to_le_bytes());
        v.extend(0u64.to_le_bytes());
        v
    }

    fn run(b: &[u8]) -> Result<Scanned, ScanError> {
        scan(&mut Mem::new(b), b.len() as u64)
    }

    #[test]
    fn hostile_headers_are_refused_with_offsets_before_any_allocation() {
        let ok = header(&kv_u32("general.alignment", 32), 1, &tensor("a", &[4, 4]), 1);
        assert_eq!(run(&ok).unwrap().alignment, Some(32));
        // general.alignment = 0 (a division by zero in candle's reader).
        let e = run(&header(&kv_u32("general.alignment", 0), 1, &[], 0)).unwrap_err();
        assert!(e.msg.contains("power of two"), "{e}");
        // A 10^8-element array declared in a tiny file.
        let mut arr = s("tokenizer.ggml.scores");
        arr.extend(9u32.to_le_bytes());
        arr.extend(6u32.to_le_bytes());
        arr.extend(100_000_000u64.to_le_bytes());
        let e = run(&header(&arr, 1, &[], 0)).unwrap_err();
        assert!(e.msg.contains("100000000 elements"), "{e}");
        // An array of strings whose count cannot fit.
        let mut arr = s("tokenizer.ggml.tokens");
        arr.extend(9u32.to_le_bytes());
        arr.extend(8u32.to_le_bytes());
        arr.extend(1_000_000u64.to_le_bytes());
        let e = run(&header(&arr, 1, &[], 0)).unwrap_err();
        assert!(e.msg.contains("cannot fit"), "{e}");
        // A string longer than the file.
        let mut k = (1u64 << 40).to_le_bytes().to_vec();
        k.extend(b"x");
        let e = run(&header(&k, 1, &[], 0)).unwrap_err();
        assert_eq!(e.offset, 24);
        // Duplicate tensor names; too many dimensions; counts beyond the caps.
        let mut t = tensor("w", &[2, 2]);
        t.extend(tensor("w", &[2, 2]));
        assert!(run(&header(&[], 0, &t, 2)).unwrap_err().msg.contains("appears twice"));
        assert!(
            run(&header(&[], 0, &tensor("w", &[1, 1, 1, 1, 1]), 1))
                .unwrap_err()
                .msg
                .contains("dimensions")
        );
        assert!(run(&header(&[], 1 << 40, &[], 0)).unwrap_err().msg.contains("at most"));
        // Found by the gguf_read fuzzer: a second `general.alignment` written with trailing NULs,
        // which candle's reader strips, of type u8 and value 0 (a division by zero in candle).
        let mut kvs = kv_u32("general.alignment", 32);
        let mut k = s("general.alignment\0\0\0\0\0");
        k.extend(0u32.to_le_bytes());
        k.push(0);
        kvs.extend(&k);
        let e = run(&header(&kvs, 2, &[], 0)).unwrap_err();
        assert!(e.msg.contains("power of two") || e.msg.contains("appears twice"), "{e}");
        let e = run(&header(&k, 1, &[], 0)).unwrap_err();
        assert!(e.msg.contains("power of two"), "{e}");
        // Truncation anywhere is an error with an offset inside the file, never a panic.
        for cut in 0..ok.len() {
            let e = run(&ok[..cut]).unwrap_err();
            assert!(e.offset <= cut as u64, "cut {cut}: {e}");
        }
    }
}
