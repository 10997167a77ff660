//! `ThreadLock`: a lock for state that only one world's thread ever touches.
//!
//! Why: a world runs on one OS thread (a current-thread runtime), yet its devices keep
//! their state behind `Send + Sync` handles, because the tasks that hold them are `Send`.
//! A `std::sync::Mutex` pays two atomic read-modify-write instructions per lock and
//! unlock (full barriers on x86) for a guarantee a world never needs; the simulated
//! network's read and write paths take three or four such locks per message, which made
//! them the largest of the simulator's own costs in wall time.
//!
//! This lock belongs to the thread that created it. Every lock checks that the caller
//! is that thread (the address of a thread-local, no atomic instruction) and sets a plain
//! flag. So the value is never reachable from two threads (another thread's lock panics
//! instead of racing), and locking it again while locked panics where a mutex would
//! deadlock. There is no poisoning: a panic ends the world's run, and what runs after it
//! (teardown, drops) sees the state as the panic left it, as with `parking_lot`.

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

thread_local! {
    /// One byte per thread: its address tells threads apart while they live.
    static THREAD_MARK: u8 = const { 0 };
}

/// This thread's mark: distinct from every other live thread's.
#[inline]
fn this_thread() -> usize {
    THREAD_MARK.with(|mark| std::ptr::from_ref(mark) as usize)
}

pub struct ThreadLock<T> {
    /// The creating thread's mark: the one thread that may lock.
    owner: usize,
    locked: Cell<bool>,
    value: UnsafeCell<T>,
}

// SAFETY: the value and the flag are only reached through `lock`, which first checks
// that the caller is the owner thread; two live threads never share a mark, so no two
// threads ever touch them. Moving the lock moves the value (hence `T: Send`), and dropping
// it has exclusive access wherever it happens.
unsafe impl<T: Send> Sync for ThreadLock<T> {}
unsafe impl<T: Send> Send for ThreadLock<T> {}

impl<T> ThreadLock<T> {
    /// A lock owned by the calling thread.
    pub fn new(value: T) -> Self {
        ThreadLock {
            owner: this_thread(),
            locked: Cell::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Locks the value. Panics when called from a thread other than the owner, or
    /// while the value is already locked (by this thread: nothing else can).
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> ThreadLockGuard<'_, T> {
        assert!(
            this_thread() == self.owner,
            "a world's state locked from another thread than the world's"
        );
        assert!(
            !self.locked.replace(true),
            "a world's state locked twice (a mutex would deadlock here)"
        );
        ThreadLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

impl<T: Default> Default for ThreadLock<T> {
    fn default() -> Self {
        ThreadLock::new(T::default())
    }
}

/// The locked value; unlocks when dropped. Stays on the owner thread (not `Send`).
pub struct ThreadLockGuard<'a, T> {
    lock: &'a ThreadLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for ThreadLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (the flag), on the owner thread.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for ThreadLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow the only one.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for ThreadLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::ThreadLock;
    use std::sync::Arc;

    #[test]
    fn locks_and_unlocks_on_its_thread() {
        let lock = ThreadLock::new(1);
        *lock.lock() += 1;
        assert_eq!(*lock.lock(), 2, "the first guard unlocked when dropped");
    }

    #[test]
    #[should_panic(expected = "locked twice")]
    fn locking_twice_panics_instead_of_deadlocking() {
        let lock = ThreadLock::new(());
        let _first = lock.lock();
        let _second = lock.lock();
    }

    #[test]
    fn another_thread_cannot_lock_it() {
        let lock = Arc::new(ThreadLock::new(0));
        let shared = lock.clone();
        #[allow(clippy::disallowed_methods, reason = "the test needs a second thread")]
        let other = std::thread::spawn(move || {
            let _ = *shared.lock();
        });
        assert!(other.join().is_err(), "a foreign thread's lock panics");
        assert_eq!(*lock.lock(), 0, "the owner still locks it");
    }

    #[test]
    fn a_panic_under_the_lock_unlocks_it() {
        let lock = ThreadLock::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut guard = lock.lock();
            *guard = 7;
            panic!("under the lock");
        }));
        assert!(result.is_err());
        assert_eq!(*lock.lock(), 7);
    }
}
