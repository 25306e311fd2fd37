//! Process resources sized for a node daemon: a small tokio runtime and glibc malloc tuning.
//!
//! Measured in `bench/RESULTS.md`: a multi-thread runtime defaults to one worker per CPU (64
//! on a large node, each with its own stack and malloc arena), blocking-pool threads linger,
//! and glibc's dynamic mmap/trim thresholds keep freed response buffers resident. Mounts are
//! I/O-bound, so two workers serve hundreds of concurrent mounts.

use std::time::Duration;

/// Worker threads by default (`--worker-threads`).
pub const DEFAULT_WORKERS: usize = 2;
/// Blocking-pool threads at most (DNS lookups, file reads), and how long an idle one lingers.
const MAX_BLOCKING: usize = 8;
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The runtime the daemon runs on.
pub fn build(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .max_blocking_threads(MAX_BLOCKING)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .thread_name("aws-csi-provider")
        .enable_all()
        .build()
}

/// glibc malloc: at most two arenas (not 8 per CPU), and fixed mmap/trim thresholds so that
/// large buffers freed after a mount go back to the kernel instead of staying resident.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() {
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    const M_ARENA_MAX: i32 = -8;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        mallopt(M_ARENA_MAX, 2);
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        mallopt(M_TRIM_THRESHOLD, 256 * 1024);
    }
}

/// Other allocators keep their defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

/// Returns freed heap pages to the kernel (glibc keeps them otherwise); cheap when idle.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim is thread-safe and only releases memory no allocation uses.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// Gives back the pages of our own code mapped while starting (argument parsing, logging and
/// TLS set-up, the kernel's fault-around of 16 pages per fault): `madvise(MADV_PAGEOUT)` on
/// the binary's executable mappings, before the socket is bound. What an idle provider runs is
/// faulted back (≈0.3 MiB, `bench/text_pageout.py`); a mount's code comes back on first use,
/// from the page cache or the image's file. Best effort: an older kernel (< 5.4) refuses the
/// advice and nothing changes.
#[cfg(target_os = "linux")]
pub fn release_startup_code() {
    const MADV_PAGEOUT: i32 = 21;
    unsafe extern "C" {
        fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
    }
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return;
    };
    let exe = exe.to_string_lossy();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.contains('x') || fields.nth(3) != Some(exe.as_ref()) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: the range is one of our own file-backed, read-only executable mappings;
        // MADV_PAGEOUT only drops clean pages, which the kernel faults back in on access.
        unsafe {
            madvise(start as *mut std::ffi::c_void, end - start, MADV_PAGEOUT);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn release_startup_code() {}

#[cfg(test)]
mod tests {
    #[test]
    fn runtime_builds_with_the_requested_workers() {
        let rt = super::build(0).expect("runtime");
        assert_eq!(rt.metrics().num_workers(), 1);
        super::tune_allocator();
        super::release_free_memory();
        assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    }
}
