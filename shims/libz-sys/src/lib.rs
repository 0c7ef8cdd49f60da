//! zlib for libgit2 and libssh2, from zlib-rs.
//!
//! The workspace patches crates.io's `libz-sys` with this crate (`[patch.crates-io]` in the
//! root Cargo.toml). libgit2 inflates every object it reads and deflates every object it
//! writes and packs. Debian's zlib does both without SIMD. zlib-rs, a Rust port of zlib-ng,
//! does them with SIMD chosen at run time, and needs no C toolchain beyond rustc. zlib-ng
//! itself would need cmake to build (`libgit2-sys/zlib-ng-compat`).
//!
//! Invariant: the C code and its zlib agree on the ABI. `include/` holds the headers of the
//! exact libz-rs-sys version pinned in Cargo.toml (`=0.5.5`); update both together.
//! `libz-rs-sys`' `export-symbols` feature exports zlib's C names (`inflate`, `deflate`, …)
//! unprefixed, and no other zlib is linked: the binaries have no `libz.so` dependency.
//!
//! The output is standard zlib streams, so every object written stays readable by stock git.

pub use libz_rs_sys::*;

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    /// The version the C code was compiled against (`include/zlib.h`) is the one linked.
    #[test]
    fn the_headers_are_those_of_the_linked_zlib_rs() {
        let header = include_str!("../include/zlib.h");
        let compiled = header
            .lines()
            .find_map(|line| line.strip_prefix("#define ZLIB_VERSION "))
            .and_then(|value| value.split('"').nth(1))
            .expect("include/zlib.h defines ZLIB_VERSION");
        // SAFETY: zlibVersion returns a pointer to a static NUL-terminated string.
        let linked = unsafe { CStr::from_ptr(super::zlibVersion()) };
        // Both read "<zlib API version><sep>zlib-rs-<zlib-rs version>"; the header's
        // separator is '.', the library's '-' (zlib-rs 0.5.5): compare the two parts.
        let parts = |version: &str| {
            let (api, ours) = version.split_once("zlib-rs-").expect("a zlib-rs version");
            (api.trim_end_matches(['.', '-']).to_owned(), ours.to_owned())
        };
        assert_eq!(parts(linked.to_str().unwrap()), parts(compiled));
    }

    /// A stream written through the C names reads back whole through them.
    #[test]
    fn deflate_then_inflate_through_the_c_api_round_trips() {
        let input: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut packed = vec![0u8; input.len() + 1024];
        let mut packed_len = packed.len() as super::uLongf;
        // SAFETY: both buffers are valid for the lengths passed.
        let rc = unsafe {
            super::compress2(
                packed.as_mut_ptr(),
                &mut packed_len,
                input.as_ptr(),
                input.len() as super::uLong,
                6,
            )
        };
        assert_eq!(rc, super::Z_OK);
        assert!((packed_len as usize) < input.len() / 4);
        let mut out = vec![0u8; input.len()];
        let mut out_len = out.len() as super::uLongf;
        // SAFETY: as above.
        let rc = unsafe { super::uncompress(out.as_mut_ptr(), &mut out_len, packed.as_ptr(), packed_len) };
        assert_eq!(rc, super::Z_OK);
        assert_eq!(&out[..out_len as usize], &input[..]);
    }
}
