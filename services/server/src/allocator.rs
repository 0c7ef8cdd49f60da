//! The process's allocator: mimalloc, set up so that its speed does not cost memory.
//!
//! Why: a History page is made of many small strings, and glibc's free lists
//! (consolidation, unlinking, arena locks) were a third of the server's time under REST
//! load; with mimalloc, REST History under back-to-back backups went from about 2,600 to
//! about 4,300 requests/s (docs/benchmarks-ab.md).
//!
//! Invariant: memory freed is handed back to the kernel at once (purge delay 0) and never
//! in transparent huge pages (the `no_thp` build feature): with mimalloc's defaults (a
//! delay of a second, huge pages allowed) the server's peak RSS during a first backup of
//! 40,000 files was 216 MB; with these, 136 MB, below glibc's. libgit2's own allocations
//! still go through glibc's malloc, whose knobs `config_backup_core::parallel` sets.
//!
//! The server's and the benchmark's `main` declare it (`#[global_allocator]`, one line
//! each: a library cannot, as two copies of it may be linked into one test binary) and
//! call [`return_freed_memory_at_once`] first thing.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` of `mimalloc.h`: stable, but not among the constants
/// `libmimalloc-sys` exports (it sits just before `mi_option_use_numa_nodes`, 16; a unit
/// test checks the neighbour and that the option reads back as set).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the kernel at once. Call first thing in `main`: mimalloc's
/// option setter is not synchronised.
pub fn return_freed_memory_at_once() {
    // SAFETY: sets one of mimalloc's integer options; any value is valid for this one
    // (0: purge at once).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0)
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys as mi;

    #[test]
    fn the_purge_delay_option_is_the_one_before_its_exported_neighbour_and_is_set_to_zero() {
        assert_eq!(mi::mi_option_use_numa_nodes - 1, PURGE_DELAY);
        // SAFETY: reads an option.
        #[allow(unsafe_code)]
        let default = unsafe { mi::mi_option_get(PURGE_DELAY) };
        assert_eq!(default, 1000, "mimalloc v3's default purge delay, 1 s");
        return_freed_memory_at_once();
        // SAFETY: reads an option.
        #[allow(unsafe_code)]
        let delay = unsafe { mi::mi_option_get(PURGE_DELAY) };
        assert_eq!(delay, 0);
    }
}
