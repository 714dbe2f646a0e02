//! Locks that outlive a panic: a thread that panicked while holding a lock leaves it poisoned,
//! and akvvm takes the data as it was left ([`PoisonError::into_inner`]) rather than panicking
//! again, because every value it guards stays consistent between statements (a counter, a map
//! updated by one insert, a state file saved whole).
//!
//! `use akvvm_cert::locks::{MutexExt, RwLockExt};` then `.lock_or_recover()`,
//! `.read_or_recover()`, `.write_or_recover()` where `.lock().unwrap()` would panic.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`], recovering a poisoned lock.
pub trait MutexExt<T: ?Sized> {
    /// The guard, also when another thread panicked while holding the lock.
    fn lock_or_recover(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> MutexExt<T> for Mutex<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`RwLock::read`] and [`RwLock::write`], recovering a poisoned lock.
pub trait RwLockExt<T: ?Sized> {
    /// The read guard, also when a writer panicked while holding the lock.
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T>;
    /// The write guard, also when a writer panicked while holding the lock.
    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLockExt<T> for RwLock<T> {
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_gives_the_data_as_it_was_left() {
        let mutex = Mutex::new(1);
        let rw = RwLock::new(2);
        let _ = std::panic::catch_unwind(|| {
            let mut m = mutex.lock().unwrap();
            let mut w = rw.write().unwrap();
            *m += 1;
            *w += 1;
            panic!("poison both");
        });
        assert!(mutex.is_poisoned() && rw.is_poisoned());
        assert_eq!(*mutex.lock_or_recover(), 2);
        assert_eq!(*rw.read_or_recover(), 3);
        *rw.write_or_recover() = 4;
        assert_eq!(*rw.read_or_recover(), 4);
    }
}
