//! Compiles `proto/configbackup/v1` into prost types, tonic stubs, a descriptor set for
//! reflection, and pbjson serde impls (proto3 JSON mapping, proto field names).

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = root.join("configbackup/v1/config_backup.proto");
    let include = protoc_bin_vendored::include_path()?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor = out.join("configbackup_descriptor.bin");

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_well_known_types(true)
        // prost's codec, its encoder sizing the buffer to the message (src/codec.rs).
        .codec_path("crate::codec::SizedCodec")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_with_config(config, &[&proto], &[&root, &include])?;

    let set = std::fs::read(&descriptor)?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".configbackup"])?;

    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
