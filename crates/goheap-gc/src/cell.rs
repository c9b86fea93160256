//! [`GcRefCell`]: a `RefCell` for values inside the collected heap.
//!
//! A `RefCell` cannot be in a `Gc` object: through `&`, `borrow_mut` could
//! move a handle out of the heap onto the stack without counting it as a
//! root. `GcRefCell::borrow_mut` counts every handle the contents hold as
//! a root for as long as the guard lives (and uncounts the contents when
//! it drops), so whatever the guard moves in or out is counted; while a
//! cell is borrowed mutably the collector does not read it (its contents
//! are roots). Shared borrows change nothing.
//!
//! Every mutable borrow passes [`write_barrier`]: a no-op while collection
//! stops the world; the hook a concurrent marker will need.

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicIsize, Ordering};

use crate::mutator;
use crate::visitor::VisitMode;
use crate::{Trace, Visitor};

/// The borrow state: `> 0` shared borrows, `-1` borrowed mutably.
const MUT: isize = -1;

/// A mutable memory location with dynamically checked borrows, for values
/// in the collected heap (a `RefCell` that is `Trace`).
///
/// ```
/// use goheap_gc::{Gc, GcRefCell};
///
/// let list = Gc::new(GcRefCell::new(Vec::new()));
/// list.borrow_mut().push(Gc::new(1u32));
/// assert_eq!(*list.borrow()[0], 1);
/// ```
///
/// It is `Sync` when `T: Send + Sync` (like `RwLock`, its borrow flag is
/// atomic), so that a `Gc<GcRefCell<T>>` can be shared between threads;
/// a borrow that conflicts panics instead of waiting.
pub struct GcRefCell<T: Trace> {
    borrow: AtomicIsize,
    value: UnsafeCell<T>,
}

// SAFETY: moving the cell moves its `T`.
unsafe impl<T: Trace + Send> Send for GcRefCell<T> {}
// SAFETY: shared access hands out `&T` (needs `T: Sync`) and `&mut T` to
// one thread at a time, excluded by the atomic borrow flag (needs
// `T: Send`), as `RwLock` does.
unsafe impl<T: Trace + Send + Sync> Sync for GcRefCell<T> {}

/// The write barrier every mutation of a collected object goes through.
/// A no-op while collections stop the world; a concurrent marker will
/// shade what it is given here.
#[inline(always)]
pub fn write_barrier<T: ?Sized + Trace>(_value: &T) {}

impl<T: Trace> GcRefCell<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        GcRefCell {
            borrow: AtomicIsize::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, the cell consumed.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }

    /// The value, through `&mut` (no borrow needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// A shared borrow.
    ///
    /// # Panics
    ///
    /// If the cell is borrowed mutably.
    pub fn borrow(&self) -> GcRef<'_, T> {
        self.try_borrow()
            .unwrap_or_else(|_| panic!("GcRefCell already mutably borrowed"))
    }

    /// A shared borrow, or an error if the cell is borrowed mutably.
    pub fn try_borrow(&self) -> Result<GcRef<'_, T>, BorrowError> {
        let mut b = self.borrow.load(Ordering::Relaxed);
        loop {
            if b < 0 || b == isize::MAX {
                return Err(BorrowError { mutable: false });
            }
            match self
                .borrow
                .compare_exchange_weak(b, b + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(GcRef { cell: self }),
                Err(now) => b = now,
            }
        }
    }

    /// A mutable borrow: the contents count as roots until the guard drops.
    ///
    /// # Panics
    ///
    /// If the cell is borrowed at all.
    pub fn borrow_mut(&self) -> GcRefMut<'_, T> {
        self.try_borrow_mut()
            .unwrap_or_else(|_| panic!("GcRefCell already borrowed"))
    }

    /// A mutable borrow, or an error if the cell is borrowed.
    pub fn try_borrow_mut(&self) -> Result<GcRefMut<'_, T>, BorrowError> {
        if T::NO_GC {
            // Nothing to count: no handle can be moved in or out.
            return self
                .borrow
                .compare_exchange(0, MUT, Ordering::Acquire, Ordering::Relaxed)
                .map(|_| GcRefMut { cell: self })
                .map_err(|_| BorrowError { mutable: true });
        }
        mutator::with_log(|log| {
            // Inside the bracket: no collection reads this cell between the
            // flag and the count.
            self.borrow
                .compare_exchange(0, MUT, Ordering::Acquire, Ordering::Relaxed)
                .map_err(|_| BorrowError { mutable: true })?;
            // SAFETY: borrowed mutably by us; nobody else reads it.
            let value = unsafe { &*self.value.get() };
            write_barrier(value);
            value.trace(&mut Visitor::counting(log, VisitMode::Root));
            Ok(GcRefMut { cell: self })
        })
    }

    /// Replaces the value, returning the old one.
    pub fn replace(&self, value: T) -> T {
        core::mem::replace(&mut *self.borrow_mut(), value)
    }

    /// Takes the value, leaving the default.
    pub fn take(&self) -> T
    where
        T: Default,
    {
        self.replace(T::default())
    }
}

/// A conflicting borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BorrowError {
    mutable: bool,
}

impl fmt::Display for BorrowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.mutable {
            "GcRefCell already borrowed"
        } else {
            "GcRefCell already mutably borrowed"
        })
    }
}

impl std::error::Error for BorrowError {}

/// A shared borrow of a [`GcRefCell`].
pub struct GcRef<'a, T: Trace> {
    cell: &'a GcRefCell<T>,
}

impl<T: Trace> Deref for GcRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a shared borrow is held: no `&mut` exists.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T: Trace> Drop for GcRef<'_, T> {
    fn drop(&mut self) {
        self.cell.borrow.fetch_sub(1, Ordering::Release);
    }
}

/// A mutable borrow of a [`GcRefCell`]; the contents are roots while it
/// lives.
pub struct GcRefMut<'a, T: Trace> {
    cell: &'a GcRefCell<T>,
}

impl<T: Trace> Deref for GcRefMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mutable borrow is ours.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T: Trace> DerefMut for GcRefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the mutable borrow is ours.
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T: Trace> Drop for GcRefMut<'_, T> {
    fn drop(&mut self) {
        if T::NO_GC {
            self.cell.borrow.store(0, Ordering::Release);
            return;
        }
        mutator::with_log(|log| {
            // SAFETY: still borrowed mutably by us.
            let value = unsafe { &*self.cell.value.get() };
            value.trace(&mut Visitor::counting(log, VisitMode::Unroot));
            // Inside the bracket: a collection sees either the contents
            // counted and the cell skipped, or neither.
            self.cell.borrow.store(0, Ordering::Release);
        });
    }
}

impl<T: Trace + fmt::Debug> fmt::Debug for GcRefCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_borrow() {
            Ok(v) => f.debug_struct("GcRefCell").field("value", &*v).finish(),
            Err(_) => f.write_str("GcRefCell { <borrowed> }"),
        }
    }
}

impl<T: Trace + Default> Default for GcRefCell<T> {
    fn default() -> Self {
        GcRefCell::new(T::default())
    }
}

// SAFETY: visits the contents' handles, unless the cell is borrowed
// mutably: then its contents are counted as roots (by `borrow_mut`) and
// may be changing, so the collector must not read them. The flag cannot
// change while a visit runs: a mutable borrow begins and ends inside its
// thread's bracket, which a collection excludes, and the other visits
// (`Gc::new`, `borrow_mut` of an enclosing cell) happen on the thread that
// owns the value or holds the enclosing borrow.
unsafe impl<T: Trace> Trace for GcRefCell<T> {
    const NO_GC: bool = T::NO_GC;
    fn trace(&self, v: &mut Visitor<'_>) {
        if self.borrow.load(Ordering::Acquire) == MUT {
            return;
        }
        // SAFETY: not borrowed mutably (see above): shared reads only.
        unsafe { (*self.value.get()).trace(v) }
    }
}

/// A [`GcRefCell`] whose borrows wait instead of panicking: the lock for
/// values in the collected heap that several threads change.
///
/// ```
/// use goheap_gc::{Gc, GcMutex};
///
/// let shared = Gc::new(GcMutex::new(Vec::new()));
/// let s = shared.clone();
/// std::thread::spawn(move || s.lock().push(Gc::new(1u32))).join().unwrap();
/// assert_eq!(*shared.lock()[0], 1);
/// ```
///
/// A waiting thread is outside every `Gc` operation, so it never holds a
/// collection up; it yields its time slice between tries (the critical
/// sections are expected to be short, as `GcRefCell` borrows are).
pub struct GcMutex<T: Trace> {
    cell: GcRefCell<T>,
}

impl<T: Trace> GcMutex<T> {
    /// A lock holding `value`.
    pub const fn new(value: T) -> Self {
        GcMutex {
            cell: GcRefCell::new(value),
        }
    }

    /// The value, the lock consumed.
    pub fn into_inner(self) -> T {
        self.cell.into_inner()
    }

    /// The value, through `&mut` (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.cell.get_mut()
    }

    /// Exclusive access, waiting while another thread has any. The
    /// contents count as roots while the guard lives, as for
    /// [`GcRefCell::borrow_mut`].
    ///
    /// A thread that locks a `GcMutex` it already holds waits forever, as
    /// with `std::sync::Mutex`.
    pub fn lock(&self) -> GcRefMut<'_, T> {
        loop {
            if let Ok(g) = self.cell.try_borrow_mut() {
                return g;
            }
            std::thread::yield_now();
        }
    }

    /// Shared access, waiting while a thread holds the lock.
    pub fn read(&self) -> GcRef<'_, T> {
        loop {
            if let Ok(g) = self.cell.try_borrow() {
                return g;
            }
            std::thread::yield_now();
        }
    }

    /// Exclusive access if no thread has any now.
    pub fn try_lock(&self) -> Result<GcRefMut<'_, T>, BorrowError> {
        self.cell.try_borrow_mut()
    }
}

impl<T: Trace + fmt::Debug> fmt::Debug for GcMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cell.try_borrow() {
            Ok(v) => f.debug_struct("GcMutex").field("value", &*v).finish(),
            Err(_) => f.write_str("GcMutex { <locked> }"),
        }
    }
}

// SAFETY: the cell's own impl, whose argument holds here unchanged.
unsafe impl<T: Trace> Trace for GcMutex<T> {
    const NO_GC: bool = T::NO_GC;
    fn trace(&self, v: &mut Visitor<'_>) {
        self.cell.trace(v)
    }
}
