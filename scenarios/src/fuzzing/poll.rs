//! Drives a future that never waits (it reads from memory) to completion without a
//! runtime, so a fuzz iteration costs no runtime setup.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The future's output. Panics if it would wait: over in-memory input that is a bug.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a read from memory returned Pending"),
    }
}
