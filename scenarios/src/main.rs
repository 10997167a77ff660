//! `chaos`: deterministic simulation and chaos tests for the agent platform engine.

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    scenarios::cli::main()
}

/// Every run is a fresh thread and a fresh world, and glibc hands what a run frees back
/// to the system at once (heap trimming, large blocks mapped and unmapped one by one),
/// so the next run faults the same pages in again: about 14% of a sweep's CPU, most of
/// it in the kernel. Raising the trim and mmap thresholds and padding heap growth keeps
/// freed memory for the next run; a process's peak stays what its largest runs need.
/// Allocator tuning only: nothing a run computes depends on it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // glibc's largest accepted mmap threshold on 64-bit targets (larger values are refused).
    const MMAP_THRESHOLD_MAX: libc::c_int = 32 << 20;
    // SAFETY: mallopt only sets allocator parameters; it is called first thing in main,
    // before any other thread exists, and a refused value leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
