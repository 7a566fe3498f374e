//! Pure decoders for PostgreSQL's binary wire format: bytes in, Rust values out.
//! Nothing here touches Python, so it is unit-tested and benchmarked on its own.
pub mod datetime;
pub mod extension;
pub mod json;
pub mod net;
pub mod numeric;
pub mod read;
pub mod text;
pub mod text_array;
pub mod transcode;

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

pub fn err<T>(msg: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(msg.into()))
}
