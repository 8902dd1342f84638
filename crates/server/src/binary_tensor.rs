//! Triton's binary tensor data extension of the v2 protocol, which `tritonclient` uses by
//! default: the body is a JSON header of `Inference-Header-Content-Length` bytes followed by the
//! tensors' raw little-endian bytes, in input order; an input without `data` says how many of
//! those bytes are its own in `parameters.binary_data_size`. Outputs come back the same way when
//! the request asks (`parameters.binary_data_output`, or an output's `parameters.binary_data`).
//!
//! Datatypes: FP32 (4 bytes a value) and UINT8 (1 byte a value). BYTES (length-prefixed
//! strings) is refused with the other datatypes until a model takes text.

use axum::body::Bytes;
use axum::http::HeaderMap;

use crate::error::ApiError;

/// The header that says where the JSON ends and the binary tensors begin.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// A request body split into its JSON header and the binary tensors after it (empty for a
/// plain JSON request).
pub struct SplitBody {
    pub json: Bytes,
    pub binary: Bytes,
}

/// Splits `body` at `Inference-Header-Content-Length`, or keeps it whole as JSON without it.
pub fn split(headers: &HeaderMap, body: Bytes) -> Result<SplitBody, ApiError> {
    let Some(value) = headers.get(HEADER_LENGTH) else {
        return Ok(SplitBody {
            json: body,
            binary: Bytes::new(),
        });
    };
    let length: usize = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the {HEADER_LENGTH} header is not a byte count: {value:?}"
            ))
        })?;
    if length > body.len() {
        return Err(ApiError::bad_request(format!(
            "the {HEADER_LENGTH} header says the JSON is {length} bytes; the body has only {}",
            body.len()
        )));
    }
    Ok(SplitBody {
        json: body.slice(..length),
        binary: body.slice(length..),
    })
}

/// Hands out the binary section's bytes to the inputs in order, and checks at the end that
/// every byte was claimed.
pub struct BinaryCursor {
    bytes: Bytes,
    at: usize,
}

impl BinaryCursor {
    pub fn new(bytes: Bytes) -> BinaryCursor {
        BinaryCursor { bytes, at: 0 }
    }

    /// The next `size` bytes, for input `name`.
    pub fn take(&mut self, name: &str, size: u64) -> Result<Bytes, ApiError> {
        let left = self.bytes.len() - self.at;
        if size > left as u64 {
            return Err(ApiError::bad_request(format!(
                "input '{name}' claims {size} bytes of binary data; only {left} remain in the body"
            )));
        }
        let size = size as usize;
        let out = self.bytes.slice(self.at..self.at + size);
        self.at += size;
        Ok(out)
    }

    /// Fails if bytes are left that no input claimed (a size that disagrees with the body).
    pub fn finish(self) -> Result<(), ApiError> {
        let left = self.bytes.len() - self.at;
        if left > 0 {
            return Err(ApiError::bad_request(format!(
                "{left} bytes of binary data follow the inputs' binary_data_size; the sizes and the body disagree"
            )));
        }
        Ok(())
    }
}

/// Bytes per value of a fixed-size datatype; `None` for BYTES and unknown names.
pub fn value_size(datatype: &str) -> Option<usize> {
    match datatype {
        "FP32" | "INT32" | "UINT32" => Some(4),
        "FP64" | "INT64" | "UINT64" => Some(8),
        "FP16" | "BF16" | "INT16" | "UINT16" => Some(2),
        "UINT8" | "INT8" | "BOOL" => Some(1),
        _ => None,
    }
}

/// FP32 values from little-endian bytes (the length already checked to be 4 × count).
pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A response body: `json` followed by the outputs' bytes, with the header length to send.
pub fn response_body(json: Vec<u8>, binary: &[u8]) -> (usize, Vec<u8>) {
    let header = json.len();
    let mut body = json;
    body.extend_from_slice(binary);
    (header, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn split_at_the_header_length() {
        let mut headers = HeaderMap::new();
        let body = Bytes::from_static(b"{\"a\":1}\x01\x02");
        let whole = split(&headers, body.clone()).unwrap();
        assert_eq!(whole.json, body);
        assert!(whole.binary.is_empty());
        headers.insert(HEADER_LENGTH, HeaderValue::from_static("7"));
        let parts = split(&headers, body.clone()).unwrap();
        assert_eq!(&parts.json[..], b"{\"a\":1}");
        assert_eq!(&parts.binary[..], b"\x01\x02");
        headers.insert(HEADER_LENGTH, HeaderValue::from_static("10"));
        let err = split(&headers, body.clone()).err().unwrap();
        assert!(err.message.contains("only 9"), "{}", err.message);
        headers.insert(HEADER_LENGTH, HeaderValue::from_static("-1"));
        assert!(split(&headers, body).is_err());
    }

    #[test]
    fn the_cursor_hands_out_bytes_in_order_and_checks_the_rest() {
        let mut cursor = BinaryCursor::new(Bytes::from_static(&[1, 2, 3, 4, 5]));
        assert_eq!(&cursor.take("a", 2).unwrap()[..], &[1, 2]);
        let err = cursor.take("b", 4).err().unwrap();
        assert!(err.message.contains("input 'b'"), "{}", err.message);
        assert_eq!(&cursor.take("b", 2).unwrap()[..], &[3, 4]);
        let err = cursor.finish().err().unwrap();
        assert!(err.message.contains("1 bytes"), "{}", err.message);
        let mut exact = BinaryCursor::new(Bytes::from_static(&[1]));
        exact.take("a", 1).unwrap();
        exact.finish().unwrap();
        // A size past what a u64 can index is refused, not wrapped.
        let mut huge = BinaryCursor::new(Bytes::from_static(&[1]));
        assert!(huge.take("a", u64::MAX).is_err());
    }

    #[test]
    fn f32_values_are_little_endian() {
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(f32_values(&bytes), vec![1.5, -2.0]);
    }
}
