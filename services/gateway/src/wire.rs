//! A tonic codec for a unary call whose answer the shim wants as the bytes the service
//! sent, not decoded: [`crate::memo::JsonMemo`] compares those bytes with the ones of the
//! answers it keeps, and decodes only an answer it has not seen.
//!
//! The request is encoded by prost, as the generated client does; the call goes through
//! the same service stack (auth, validation, error map) as any other.

use std::marker::PhantomData;

use bytes::{Buf, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};

/// Encodes `T` with prost; decodes nothing, keeping the answer's bytes.
#[derive(Debug)]
pub struct WireAnswer<T>(PhantomData<fn(T)>);

impl<T> Default for WireAnswer<T> {
    fn default() -> Self {
        WireAnswer(PhantomData)
    }
}

impl<T: prost::Message + Send + 'static> Codec for WireAnswer<T> {
    type Encode = T;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = KeepBytes;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        KeepBytes
    }
}

/// The decoder of [`WireAnswer`]: one message's bytes, as they came.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepBytes;

impl Decoder for KeepBytes {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
