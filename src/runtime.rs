//! The per-process tokio runtime.
//!
//! A current-thread runtime: the Python thread that waits on a query drives the socket
//! itself, with no hop to a worker thread, and there are no background threads to lose
//! across `os.fork()`. State is keyed by pid; a forked child builds its own runtime
//! lazily and never drops (or touches) what it inherited from the parent.

use parking_lot::Mutex;
use pyo3::prelude::*;
use std::future::Future;
use std::sync::Arc;
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

pub fn current_pid() -> u32 {
    std::process::id()
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
    py.allow_threads(move || rt.block_on(fut))
}

/// Runs `fut` without the GIL being held at all (callers already released it).
pub fn block_on_unlocked<F: Future>(fut: F) -> F::Output {
    get().block_on(fut)
}
