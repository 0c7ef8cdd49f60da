//! The gRPC codec of the generated stubs: prost's, with the encoder sizing its buffer
//! to the message before writing it.
//!
//! tonic's encoder starts each response in an 8 KiB buffer and prost writes into it
//! field by field, so a large answer (a Diff of thousands of files: megabytes of patch
//! text) grew the buffer a dozen times, each growth a new allocation, a copy of all
//! written so far and fresh pages faulted in. Asking the message its encoded length
//! first (a pass over lengths, no bytes copied) makes it one allocation and one write.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};

/// prost's codec ([`tonic_prost::ProstCodec`]) with [`SizedEncoder`].
#[derive(Debug, Clone, Copy)]
pub struct SizedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SizedCodec<T, U> {
    fn default() -> Self {
        SizedCodec(PhantomData)
    }
}

impl<T, U> Codec for SizedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SizedEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        SizedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(BufferSettings::default())
    }
}

/// Encodes a prost message into a buffer first grown to the message's encoded length.
#[derive(Debug, Clone, Copy)]
pub struct SizedEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for SizedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding the message: {e}")))
    }
}
