//! Work spread over a few threads, results in order: what hashing a domain's files and
//! making a diff's patches share.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Caps glibc's malloc arenas at two. glibc gives threads arenas of their own (up to eight
/// per core), and the scan and hashing threads each run starts fill theirs with read
/// buffers and per-file records; memory freed in an arena stays resident. A first backup
/// of 40,000 files held 252 MB for a heap whose live peak was 44 MB (heaptrack), and
/// 163 MB with two arenas. Called first thing in `main`, before threads start. In a
/// binary whose global allocator is another (the server's is mimalloc), this bounds only
/// what C libraries (libgit2) allocate through malloc.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt sets one of glibc's allocator parameters; M_ARENA_MAX only bounds
        // how many arenas threads may create from now on.
        #[allow(unsafe_code)]
        let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
        if set != 1 {
            tracing::debug!("could not limit malloc's arenas");
        }
    }
}

/// Hands the free memory in malloc's arenas back to the kernel (`malloc_trim(0)`, which
/// also releases free pages inside an arena, not only at its top). After work over many
/// files, most of what was allocated is free again but stays resident, and what comes
/// next (recording the audit trail of a first backup) would add its own peak on top.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free memory of glibc's heap to the kernel.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// One worker's results, each with its item's index.
type Tagged<R, E> = Result<Vec<(usize, R)>, E>;

/// How many threads for `items` pieces of work, at least `per_thread` each: one per core,
/// at most 8.
pub fn threads_for(items: usize, per_thread: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(items.div_ceil(per_thread.max(1))).min(8)
}

/// Runs `worker` on `threads` scoped threads. Each worker does its own setup (a
/// repository handle, a buffer), then takes items in turn from the `next` it is given
/// (index and item) and returns its results tagged with their index; the results come
/// back in item order. After a worker fails, `next` gives the others nothing more; the
/// first error (in thread order) is returned, and a panicking worker becomes
/// `panicked()`.
pub fn in_order<'a, T, R, E>(
    items: &'a [T],
    threads: usize,
    worker: impl Fn(&mut dyn FnMut() -> Option<(usize, &'a T)>) -> Tagged<R, E> + Sync,
    panicked: impl Fn() -> E,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let taken = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let run = || {
        let mut next = || {
            if failed.load(Ordering::Relaxed) {
                return None;
            }
            let i = taken.fetch_add(1, Ordering::Relaxed);
            items.get(i).map(|t| (i, t))
        };
        let result = worker(&mut next);
        if result.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        result
    };
    // `None`: the thread panicked.
    let parts: Vec<Option<Tagged<R, E>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(run)).collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let mut all = Vec::with_capacity(items.len());
    for part in parts {
        all.extend(part.unwrap_or_else(|| Err(panicked()))?);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order() {
        let items: Vec<u32> = (0..1000).collect();
        let out: Result<Vec<u32>, ()> = in_order(
            &items,
            4,
            |next| {
                let mut v = Vec::new();
                while let Some((i, x)) = next() {
                    v.push((i, x * 2));
                }
                Ok(v)
            },
            || (),
        );
        assert_eq!(out.unwrap(), items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }

    #[test]
    fn an_error_stops_the_work_and_is_returned() {
        let items: Vec<u32> = (0..100).collect();
        let out: Result<Vec<u32>, String> = in_order(
            &items,
            2,
            |next| {
                let mut v = Vec::new();
                while let Some((i, x)) = next() {
                    if *x == 10 {
                        return Err(format!("item {x}"));
                    }
                    v.push((i, *x));
                }
                Ok(v)
            },
            || "panicked".to_owned(),
        );
        assert_eq!(out.unwrap_err(), "item 10");
    }
}
