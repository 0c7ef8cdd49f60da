//! Hands the C build scripts of libgit2-sys and libssh2-sys (DEP_Z_INCLUDE, DEP_Z_ROOT) the
//! headers of the zlib-rs version this crate links, in place of the system's zlib.h.

fn main() {
    let root = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let include = root.join("include");
    println!("cargo:rerun-if-changed=include/zlib.h");
    println!("cargo:rerun-if-changed=include/zconf.h");
    println!("cargo:include={}", include.display());
    println!("cargo:root={}", root.display());
}
