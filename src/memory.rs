//! Returning freed memory to the OS while a large result is converted.
//!
//! Wire rows live in small heap allocations that glibc keeps after they are freed, while
//! Python allocates its objects from arenas of its own: without a trim, the peak of a
//! 100k-row fetchall is rows + objects instead of about the larger of the two.

/// Gives free heap pages back to the OS (glibc's `malloc_trim`; a no-op elsewhere).
#[inline]
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
