//! [`Gc<T>`]: handles to objects of the collected heap, and the objects'
//! layout.
//!
//! The collector needs a type's [`TypeInfo`] (how to trace it, how to drop
//! it) when the type may hold handles or has a `Drop`. Small objects of
//! such a type go in a typed span class of the core, bound to the type and
//! its size class: the span holds the information and the objects are bare
//! values. Large objects, and small ones once every typed class is bound,
//! start with a header pointing at it instead. Objects of other types are
//! bare bytes in noscan spans (under 16 bytes: the tiny allocator). A
//! handle points at the value, so `Deref` is a plain load.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, needs_drop, size_of};
use core::ops::Deref;
use core::ptr::NonNull;
use std::alloc::Layout;

use crate::mutator;
use crate::visitor::VisitMode;
use crate::{Trace, Visitor};

/// What the collector needs to know about an object's type.
pub(crate) struct TypeInfo {
    /// Visits the value's handles (`None`: the type holds none).
    pub(crate) trace: Option<unsafe fn(*const u8, &mut Visitor<'_>)>,
    /// Runs the value's `Drop` glue (`None`: it has none).
    pub(crate) drop: Option<unsafe fn(*mut u8)>,
    /// Bytes from the object's start (its header) to its value, for an
    /// object with a header (one of a typed class starts with its value).
    pub(crate) offset: usize,
}

/// The header's size: one pointer.
const HEADER: usize = size_of::<usize>();

struct Info<T>(PhantomData<T>);

impl<T: Trace + 'static> Info<T> {
    /// Whether the collector needs the type's information (a `trace` or a
    /// `Drop`): in its span (a typed class) for small objects, else in a
    /// header.
    const HEADERED: bool = !T::NO_GC || needs_drop::<T>();
    /// Small objects that need the type's information go in a typed span
    /// class, headerless: the value's own size and alignment.
    const TYPED: bool = Self::HEADERED
        && goheap::gc_support::span_class_for(Self::TYPED_SIZE, align_of::<T>(), false).is_some();
    const TYPED_SIZE: usize = if size_of::<T>() == 0 {
        1
    } else {
        size_of::<T>()
    };
    /// From the object's start to the value.
    const OFFSET: usize = if Self::HEADERED {
        if align_of::<T>() > HEADER {
            align_of::<T>()
        } else {
            HEADER
        }
    } else {
        0
    };
    /// Whether a dead object's `Drop` must run (not when it would only
    /// drop handles, which were never counted).
    const DROPS: bool = needs_drop::<T>() && !T::DROP_ONLY_HANDLES;
    /// The object's size and alignment in the collected heap.
    const SIZE: usize = {
        let s = Self::OFFSET + size_of::<T>();
        if s == 0 {
            1
        } else {
            s
        }
    };
    const ALIGN: usize = if Self::HEADERED && align_of::<T>() < HEADER {
        HEADER
    } else {
        align_of::<T>()
    };
    /// Its span class, known at compile time (`None`: a large or tiny
    /// object, which takes the general path).
    const SPAN_CLASS: Option<usize> =
        goheap::gc_support::span_class_for(Self::SIZE, Self::ALIGN, !Self::HEADERED);
    const INFO: TypeInfo = TypeInfo {
        trace: if T::NO_GC {
            None
        } else {
            Some(trace_value::<T>)
        },
        drop: if Self::DROPS {
            Some(drop_value::<T>)
        } else {
            None
        },
        offset: Self::OFFSET,
    };
}

/// # Safety
///
/// `value` points at a live `T`.
unsafe fn trace_value<T: Trace>(value: *const u8, v: &mut Visitor<'_>) {
    // SAFETY: per the contract.
    unsafe { (*value.cast::<T>()).trace(v) }
}

/// # Safety
///
/// `value` points at a `T` nobody will use again.
unsafe fn drop_value<T>(value: *mut u8) {
    // SAFETY: per the contract.
    unsafe { value.cast::<T>().drop_in_place() }
}

/// The type information of the headered object starting at `base`.
///
/// # Safety
///
/// `base` starts an initialised object of a scan span.
pub(crate) unsafe fn type_info(base: *mut u8) -> &'static TypeInfo {
    // SAFETY: per the contract, the first word is the header.
    unsafe { *base.cast::<&'static TypeInfo>() }
}

/// A handle to a `T` in the collected heap.
///
/// `Gc::new` moves a value there; the handle derefs to it (`&T` only: to
/// change a field after allocation, put it in a [`GcRefCell`](crate::GcRefCell)
/// or a `Cell`). Handles are cloned with [`Clone`] (not `Copy`: each
/// handle outside the heap counts as a root; see the crate docs) and may
/// be kept anywhere: locals, arguments, `Vec`s and maps on the stack or in
/// other objects, closures, other threads when `T: Send + Sync`. The object
/// lives while a handle outside the collected heap reaches it, directly or
/// through other objects; after that a collection runs its `Drop` and
/// frees it.
pub struct Gc<T: Trace + 'static> {
    ptr: NonNull<T>,
    /// Owns a `T` as far as auto traits and drop check go.
    _owns: PhantomData<T>,
}

impl<T: Trace + Send + 'static> Gc<T> {
    /// Moves `value` into the collected heap (Go's `new`). May run a
    /// collection first, when the pacer says so.
    ///
    /// `T: Send` because a dead object's `Drop` runs on whichever thread
    /// collects.
    ///
    /// # Panics
    ///
    /// Aborts through [`std::alloc::handle_alloc_error`] when memory is
    /// exhausted even after a collection (or the memory limit is hard and
    /// reached).
    #[inline]
    pub fn new(value: T) -> Gc<T> {
        let mut value = core::mem::ManuallyDrop::new(value);
        // SAFETY: writes the whole value, once.
        unsafe { Self::alloc_with(|p| p.write(core::mem::ManuallyDrop::take(&mut value))) }
    }

    /// Allocates a `T` and lets `init` write it (once, into the fresh
    /// slot, inside the thread's bracket).
    ///
    /// # Safety
    ///
    /// `init` leaves a valid `T` at the pointer it is given and does not
    /// touch the collector (no `Gc` operation).
    #[inline(always)]
    unsafe fn alloc_with(init: impl FnOnce(*mut T)) -> Gc<T> {
        // SAFETY: forwarded contract.
        unsafe { Self::alloc_with_zeroed(false, init) }
    }

    /// [`alloc_with`](Self::alloc_with), the slot all zero before `init`
    /// runs if `zeroed`.
    ///
    /// # Safety
    ///
    /// As `alloc_with`.
    #[inline(always)]
    unsafe fn alloc_with_zeroed(zeroed: bool, init: impl FnOnce(*mut T)) -> Gc<T> {
        let size = Info::<T>::SIZE;
        let align = Info::<T>::ALIGN;
        let noscan = !Info::<T>::HEADERED;
        let drops = Info::<T>::DROPS;
        let Some(m) = mutator::mutator() else {
            no_thread_state();
        };
        let mut init = Some(init);
        let mut retried = false;
        loop {
            let r = m.op(|log| {
                let info = &Info::<T>::INFO as *const TypeInfo as usize;
                // A typed class (no header) for small objects needing the
                // type's information, when one is bound; else a header.
                let typed = if Info::<T>::TYPED {
                    m.typed_class(info, Info::<T>::TYPED_SIZE, align_of::<T>())
                } else {
                    None
                };
                let bytes = if typed.is_some() {
                    Info::<T>::TYPED_SIZE
                } else {
                    size
                };
                // SAFETY: inside the bracket, the owner's cache.
                let (base, refilled) = unsafe {
                    match (typed, Info::<T>::SPAN_CLASS) {
                        (Some(spc), _) | (None, Some(spc)) => m.cache.alloc_in(spc, bytes, drops),
                        (None, None) => m.cache.alloc(size, align, noscan, drops, zeroed),
                    }
                };
                if base.is_null() {
                    return Err(());
                }
                m.alloc_bytes.set(m.alloc_bytes.get() + bytes as u64);
                // SAFETY: a fresh slot of at least `size` bytes (the
                // value's own size, for a typed class) at `align`; the
                // collector cannot see it before the bracket ends.
                let ptr = unsafe {
                    let p = if typed.is_some() {
                        base.cast::<T>()
                    } else {
                        if Info::<T>::HEADERED {
                            base.cast::<&'static TypeInfo>().write(&Info::<T>::INFO);
                        }
                        base.add(Info::<T>::OFFSET).cast::<T>()
                    };
                    if let Some(init) = init.take() {
                        init(p);
                    }
                    NonNull::new_unchecked(p)
                };
                // The handles the value holds are inside the heap now: they
                // stop counting as roots. The new handle starts counting.
                // SAFETY: the value was just written.
                let v = unsafe { ptr.as_ref() };
                if !T::NO_GC {
                    v.trace(&mut Visitor::counting(log, VisitMode::Unroot));
                }
                log.push(ptr.as_ptr() as usize, 1);
                Ok((ptr, refilled))
            });
            match r {
                Ok((ptr, refilled)) => {
                    if refilled {
                        crate::collector::maybe_collect(m);
                    }
                    return Gc {
                        ptr,
                        _owns: PhantomData,
                    };
                }
                Err(()) if !retried => {
                    retried = true;
                    crate::collect();
                }
                Err(()) => {
                    // SAFETY: a power-of-two alignment and a size that fit
                    // a `Layout` (they came from a `T`).
                    let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
                    std::alloc::handle_alloc_error(layout)
                }
            }
        }
    }
}

impl<T: Trace + Zeroable + Send + 'static> Gc<T> {
    /// A `T` of all zero bytes in the collected heap, written in place
    /// (Go's `make([]byte, n)` for a fixed `n`: `Gc::<[u8; 4096]>::new_zeroed()`),
    /// never built on the stack first, so large arrays work.
    #[inline]
    pub fn new_zeroed() -> Gc<T> {
        // SAFETY: all-zero bytes are a valid `T` (`Zeroable`), and a `T`
        // that is `Zeroable` holds no handle to count. Large and tiny
        // objects come zeroed from the heap (a large object's fresh pages
        // are not cleared twice); the others are cleared here.
        unsafe {
            Self::alloc_with_zeroed(true, |p| {
                if Info::<T>::SPAN_CLASS.is_some() {
                    p.write_bytes(0, 1)
                }
            })
        }
    }
}

/// Types for which all-zero bytes are a valid value and that hold no
/// `Gc` handle: the integers, floats, `bool`, and arrays and tuples of
/// them (what [`Gc::new_zeroed`] takes).
///
/// # Safety
///
/// All-zero bytes must be a valid value of the type, and the type must be
/// `Trace::NO_GC`.
pub unsafe trait Zeroable: Trace {}

macro_rules! zeroable {
    ($($t:ty)*) => {
        $(
            // SAFETY: zero is a valid value of a primitive number or bool,
            // which holds no handle.
            unsafe impl Zeroable for $t {}
        )*
    };
}

zeroable!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize f32 f64 bool);

// SAFETY: an array of zero elements is zero bytes; no handle.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}
// SAFETY: as above, for each element.
unsafe impl<A: Zeroable, B: Zeroable> Zeroable for (A, B) {}

#[cold]
#[inline(never)]
fn no_thread_state() -> ! {
    eprintln!(
        "goheap-gc: fatal error: Gc::new on a thread whose thread-locals are being destroyed"
    );
    std::process::abort()
}

impl<T: Trace + 'static> Gc<T> {
    /// Whether two handles are to the same object.
    #[inline]
    pub fn ptr_eq(this: &Gc<T>, other: &Gc<T>) -> bool {
        this.ptr == other.ptr
    }

    /// The address of the value.
    #[inline]
    pub fn as_ptr(this: &Gc<T>) -> *const T {
        this.ptr.as_ptr()
    }

    /// The address of the object (what a visit of this handle records).
    #[cfg(test)]
    pub(crate) fn addr(this: &Gc<T>) -> *const u8 {
        this.ptr.as_ptr().cast_const().cast()
    }
}

impl<T: Trace + 'static> Clone for Gc<T> {
    /// A second handle to the same object: one entry in the thread's root
    /// log, no shared counter.
    #[inline]
    fn clone(&self) -> Gc<T> {
        mutator::log(self.ptr.as_ptr() as usize, 1);
        Gc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Drop for Gc<T> {
    /// One entry in the thread's root log (none while the thread drops dead
    /// objects, whose handles were never counted).
    #[inline]
    fn drop(&mut self) {
        mutator::log(self.ptr.as_ptr() as usize, -1);
    }
}

impl<T: Trace + 'static> Deref for Gc<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this handle is counted as a root (or sits inside an
        // object reachable from one, borrowed through it), so the object
        // is live for as long as `&self` is; objects are only read through
        // shared references.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Trace + fmt::Debug + 'static> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Trace + fmt::Display + 'static> fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: Trace + PartialEq + 'static> PartialEq for Gc<T> {
    fn eq(&self, other: &Gc<T>) -> bool {
        **self == **other
    }
}

impl<T: Trace + Eq + 'static> Eq for Gc<T> {}

impl<T: Trace + core::hash::Hash + 'static> core::hash::Hash for Gc<T> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

// SAFETY: a `Gc<T>` gives `&T` to any thread holding a clone, so `T: Sync`,
// and a dead object's `Drop` may run on any thread, so `T: Send`.
unsafe impl<T: Trace + Send + Sync + 'static> Send for Gc<T> {}

// SAFETY: `&Gc<T>` gives `&T` and can be cloned into a `Gc<T>` on another
// thread: as for `Send`.
unsafe impl<T: Trace + Send + Sync + 'static> Sync for Gc<T> {}

// SAFETY: a handle owns exactly itself, and visits itself once.
unsafe impl<T: Trace + 'static> Trace for Gc<T> {
    const NO_GC: bool = false;
    const DROP_ONLY_HANDLES: bool = true;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        v.visit_raw(self.ptr.as_ptr().cast_const().cast());
    }
}
