//! The `configbackup.v1` API as Rust: prost messages, tonic client and server stubs,
//! serde impls following the proto3 JSON mapping (with proto field names), and the
//! encoded descriptor set that server reflection serves.

#![allow(clippy::all, missing_docs)]

pub mod codec;

/// Package `configbackup.v1`.
pub mod v1 {
    tonic::include_proto!("configbackup.v1");
    include!(concat!(env!("OUT_DIR"), "/configbackup.v1.serde.rs"));
}

/// Package `google.api` (only the http annotations the proto uses).
pub mod google_api {
    include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
}

/// The encoded `FileDescriptorSet` of the API, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/configbackup_descriptor.bin"));
