//! The per-process tokio runtime.
//!
//! A current-thread runtime: the Python thread that waits on a query drives the socket
//! itself, with no hop to a worker thread, and there are no background threads to lose
//! across `os.fork()`. State is keyed by pid; a forked child builds its own runtime
//! lazily and never drops (or touches) what it inherited from the parent.

use parking_lot::Mutex;
use pyo3::prelude::*;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// This process's id, 0 until asked and again in a child right after fork: every
/// statement asks (fork safety), and `getpid` is a system call each time.
static PID: AtomicU32 = AtomicU32::new(0);
static FORGET_PID_IN_CHILD: Once = Once::new();

extern "C" fn forget_pid() {
    PID.store(0, Ordering::Relaxed);
}

pub fn current_pid() -> u32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    FORGET_PID_IN_CHILD.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
    });
    let pid = std::process::id();
    PID.store(pid, Ordering::Relaxed);
    pid
}

pub fn get() -> Arc<Runtime> {
    let pid = current_pid();
    let mut slot = RUNTIME.lock();
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return rt.clone();
        }
    }
    if let Some(inherited) = slot.take() {
        // The parent's runtime owns the parent's sockets: leak it, never drop it here.
        std::mem::forget(inherited);
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a tokio runtime only fails when the OS is out of resources"),
    );
    *slot = Some((pid, rt.clone()));
    rt
}

/// Runs `fut` to completion with the GIL released.
pub fn block_on<F>(py: Python<'_>, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = get();
    if std::mem::size_of::<F>() > LARGE_FUTURE {
        // A pool checkout's future holds a whole connect (TLS handshake included): moving
        // it through allow_threads and block_on copied ~15 KB several times per checkout.
        let fut = Box::pin(fut);
        return py.allow_threads(move || rt.block_on(fut));
    }
    py.allow_threads(move || rt.block_on(fut))
}

const LARGE_FUTURE: usize = 2048;

/// Runs `fut` without the GIL being held at all (callers already released it).
pub fn block_on_unlocked<F: Future>(fut: F) -> F::Output {
    get().block_on(fut)
}
