//! The heap profile's records: buckets (a call stack and a size, with
//! their allocation and free counts) and the sampled region, where each
//! sampled small object has a 32 KiB slot of its own.
//!
//! All memory here comes straight from `mmap` (`MAP_NORESERVE`, backed
//! only where touched), reserved the first time a sample is taken:
//!
//! - `buckets`: up to [`MAX_BUCKETS`] [`Bucket`]s, appended, never removed
//!   (Go keeps its buckets forever too);
//! - `index`: an open-addressing hash table of bucket numbers, keyed by
//!   the stack and the size;
//! - `stacks`: the buckets' frames, appended;
//! - the region: [`REGION_SLOTS`] slots of [`SLOT_BYTES`], at addresses
//!   with [`SAMPLED_ADDR_BIT`] set, and `slots`, a record per slot (its
//!   bucket and size class while live, the next free slot while free).
//!
//! A sampled small object starts its slot, so any small alignment (at
//! most 8 KiB) holds. A slot handed out for zeroed memory is cleared up
//! to the extent earlier objects wrote (`Slot::dirty`; the rest of the
//! slot was never touched since its pages were last released). A freed slot keeps its pages while the free slots'
//! touched pages stay under [`DIRTY_FREE_LIMIT`], so a program that
//! allocates and frees steadily reuses resident slots; beyond that the
//! freed slot's pages are released (`MADV_DONTNEED`). Releasing every
//! freed slot at once was what made profiling expensive: each `madvise`
//! flushes the TLB of every CPU the process runs on (an interrupt to
//! each), and the next use of the slot faults its pages back in.

use crate::sizeclass::NUM_SIZE_CLASSES;
use crate::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::sync::Mutex;
use core::ptr;

use super::SAMPLED_ADDR_BIT;

/// Frames kept per sample (Go 1.23 keeps 128 by default; 64 covers
/// the programs we looked at and halves the walk's worst case).
pub(crate) const MAX_DEPTH: usize = 64;
/// Distinct (stack, size) pairs kept; samples beyond are dropped and
/// counted ([`dropped`]).
pub(crate) const MAX_BUCKETS: usize = 1 << 18;
/// The index's largest and first sizes, in entries: it starts small (a
/// program with few allocation sites touches 16 KiB of it) and doubles
/// while over half full, rebuilt from the buckets' hashes.
const INDEX_LEN: usize = 1 << 19;
const INDEX_FIRST_LEN: usize = 1 << 12;
const STACK_WORDS: usize = 1 << 24;
/// A sampled small object's slot: the largest small size.
pub(crate) const SLOT_BYTES: usize = 32 << 10;
/// Slots in the region: 64 GiB of address space, 2 Mi objects.
pub(crate) const REGION_SLOTS: usize = 1 << 21;
const REGION_BYTES: usize = REGION_SLOTS * SLOT_BYTES;
/// Where the region is asked for first: the lowest address with the tag
/// bit, far below where the kernel places mappings.
const REGION_HINT: usize = SAMPLED_ADDR_BIT;
/// Touched pages the free slots may keep, in bytes: at most this much
/// memory is held for sampled objects that no longer exist.
pub(crate) const DIRTY_FREE_LIMIT: usize = 1 << 20;

/// One call stack and allocation size, with its counts.
#[repr(C)]
pub(crate) struct Bucket {
    hash: u64,
    /// Bytes per allocation (the requested size).
    pub(crate) size: u64,
    stack_off: u32,
    depth: u32,
    /// Sampled allocations and frees (lock-free increments).
    pub(crate) allocs: AtomicU64,
    pub(crate) frees: AtomicU64,
}

/// A slot's record: `bucket + 1` and the size class while live; 0 and
/// the next free slot + 1 while free.
#[repr(C)]
struct Slot {
    bucket: u32,
    class: u32,
    next_free: u32,
    /// Bytes from the slot's start that may be non-zero (the largest
    /// object it held since its pages were last released).
    dirty: u32,
}

/// The writers' side, under [`TABLE`].
struct Table {
    /// 0 = not yet reserved, 1 = ready, 2 = reservation failed.
    state: u8,
    index: *mut u32,
    /// Entries of `index` in use (a power of two, at most [`INDEX_LEN`]).
    index_len: usize,
    stacks: *mut usize,
    stack_len: usize,
    slots: *mut Slot,
    /// Slots below this have been handed out at least once.
    slot_bump: usize,
    /// First free slot + 1, 0 = none.
    free_slot: u32,
    /// The free slots' touched pages, in bytes (at most
    /// [`DIRTY_FREE_LIMIT`]).
    dirty_free: usize,
    /// Where the region's slots start (0 if it could not be reserved:
    /// then only large objects are sampled).
    region: usize,
}

// SAFETY: the raw pointers are private mappings used under the lock.
unsafe impl Send for Table {}

/// The profile's lock: bucket insertion and the region's slots. A leaf:
/// nothing else is locked, and nothing allocates, while it is held.
static TABLE: Mutex<Table> = Mutex::new(Table {
    state: 0,
    index: ptr::null_mut(),
    index_len: INDEX_FIRST_LEN,
    stacks: ptr::null_mut(),
    stack_len: 0,
    slots: ptr::null_mut(),
    slot_bump: 0,
    free_slot: 0,
    dirty_free: 0,
    region: 0,
});

/// The bucket array, published once (Release) when the table is ready;
/// buckets below [`NBUCKETS`] are complete and readable without the lock.
static BUCKETS: AtomicPtr<Bucket> = AtomicPtr::new(ptr::null_mut());
/// Buckets in use; raised (Release) under the lock after a bucket is
/// written.
static NBUCKETS: AtomicUsize = AtomicUsize::new(0);
/// The stack words, published with [`BUCKETS`].
static STACKS: AtomicPtr<usize> = AtomicPtr::new(ptr::null_mut());
/// The region's first slot (0 until reserved; never changes after).
static REGION: AtomicUsize = AtomicUsize::new(0);
/// Samples not recorded because a table or the region was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Sampled small objects allocated and freed, per class (for the
/// statistics: they bypass the caches' counts).
pub(crate) static SMALL_ALLOCS: [AtomicU64; NUM_SIZE_CLASSES] =
    [const { AtomicU64::new(0) }; NUM_SIZE_CLASSES];
pub(crate) static SMALL_FREES: [AtomicU64; NUM_SIZE_CLASSES] =
    [const { AtomicU64::new(0) }; NUM_SIZE_CLASSES];

/// The sampled small objects alive now, each rounded up to the whole
/// heap pages its slot holds of the region: the statistics count them as
/// heap pages.
pub(crate) fn small_live_page_bytes() -> u64 {
    (1..NUM_SIZE_CLASSES)
        .map(|c| {
            let live = SMALL_ALLOCS[c]
                .load(Ordering::Relaxed)
                .saturating_sub(SMALL_FREES[c].load(Ordering::Relaxed));
            let pages = crate::sizeclass::class_size(c).next_multiple_of(crate::sizeclass::PAGE_SIZE);
            live * pages as u64
        })
        .sum()
}

/// Samples dropped for lack of room.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Counts a sample dropped for lack of room elsewhere (the collected
/// heap's address map, `gcmap`).
pub(crate) fn count_dropped() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

/// A fresh read-write private mapping of `bytes`, backed where touched,
/// near `hint` if non-zero; null on failure.
fn map(bytes: usize, hint: usize) -> *mut u8 {
    // SAFETY: an anonymous mapping without MAP_FIXED replaces nothing.
    let p = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

impl Table {
    /// Reserves everything, once. False if it failed (then, or before).
    fn ready(&mut self) -> bool {
        match self.state {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let buckets = map(MAX_BUCKETS * core::mem::size_of::<Bucket>(), 0);
        let index = map(INDEX_LEN * 4, 0);
        let stacks = map(STACK_WORDS * core::mem::size_of::<usize>(), 0);
        let slots = map(REGION_SLOTS * core::mem::size_of::<Slot>(), 0);
        if buckets.is_null() || index.is_null() || stacks.is_null() || slots.is_null() {
            self.state = 2;
            return false;
        }
        self.index = index.cast();
        self.stacks = stacks.cast();
        self.slots = slots.cast();
        self.region = reserve_region();
        STACKS.store(self.stacks, Ordering::Release);
        BUCKETS.store(buckets.cast(), Ordering::Release);
        REGION.store(self.region, Ordering::Release);
        self.state = 1;
        true
    }

    /// The bucket for `stack` and `size`, made if new; `None` if full.
    fn bucket(&mut self, stack: &[usize], size: usize) -> Option<u32> {
        let hash = hash(stack, size);
        let buckets = BUCKETS.load(Ordering::Relaxed);
        let n = NBUCKETS.load(Ordering::Relaxed);
        let mask = self.index_len - 1;
        let mut i = hash as usize & mask;
        loop {
            // SAFETY: `i < index_len <= INDEX_LEN`, inside the index
            // mapping.
            let e = unsafe { *self.index.add(i) };
            if e == 0 {
                break;
            }
            let b = e - 1;
            // SAFETY: index entries name written buckets; their stacks are
            // inside the stack mapping.
            unsafe {
                let bk = &*buckets.add(b as usize);
                if bk.hash == hash
                    && bk.size == size as u64
                    && bk.depth as usize == stack.len()
                    && core::slice::from_raw_parts(
                        self.stacks.add(bk.stack_off as usize),
                        stack.len(),
                    ) == stack
                {
                    return Some(b);
                }
            }
            i = (i + 1) & mask;
        }
        if n >= MAX_BUCKETS || self.stack_len + stack.len() > STACK_WORDS {
            return None;
        }
        if 2 * (n + 1) > self.index_len && self.index_len < INDEX_LEN {
            self.grow_index(n);
            i = self.free_entry(hash);
        }
        // SAFETY: bucket `n` and the stack words are inside their mappings
        // and unused; readers see them only after NBUCKETS is raised.
        unsafe {
            ptr::copy_nonoverlapping(stack.as_ptr(), self.stacks.add(self.stack_len), stack.len());
            buckets.add(n).write(Bucket {
                hash,
                size: size as u64,
                stack_off: self.stack_len as u32,
                depth: stack.len() as u32,
                allocs: AtomicU64::new(0),
                frees: AtomicU64::new(0),
            });
            *self.index.add(i) = n as u32 + 1;
        }
        self.stack_len += stack.len();
        NBUCKETS.store(n + 1, Ordering::Release);
        Some(n as u32)
    }
}

impl Table {
    /// Doubles the index and enters the `n` buckets written so far again.
    fn grow_index(&mut self, n: usize) {
        self.index_len *= 2;
        // SAFETY: the first `index_len` entries are inside the index
        // mapping, used only under the lock.
        unsafe { ptr::write_bytes(self.index, 0, self.index_len) };
        let buckets = BUCKETS.load(Ordering::Relaxed);
        for b in 0..n {
            // SAFETY: buckets below NBUCKETS are written.
            let h = unsafe { (*buckets.add(b)).hash };
            let i = self.free_entry(h);
            // SAFETY: `i < index_len`, inside the mapping.
            unsafe { *self.index.add(i) = b as u32 + 1 };
        }
    }

    /// The first empty entry of `hash`'s probe sequence (the index is at
    /// most half full, so there is one).
    fn free_entry(&self, hash: u64) -> usize {
        let mask = self.index_len - 1;
        let mut i = hash as usize & mask;
        // SAFETY: `i < index_len`, inside the index mapping.
        while unsafe { *self.index.add(i) } != 0 {
            i = (i + 1) & mask;
        }
        i
    }
}

/// The region: [`REGION_BYTES`] at an address with the tag bit, aligned
/// to a slot; 0 if none can be had (small objects are then not sampled).
fn reserve_region() -> usize {
    for hint in [REGION_HINT, REGION_HINT + (1 << 44), 0] {
        let p = map(REGION_BYTES + SLOT_BYTES, hint) as usize;
        if p == 0 {
            continue;
        }
        let base = p.next_multiple_of(SLOT_BYTES);
        let end = base + REGION_BYTES;
        // Every address of the region must carry the bit: the whole range
        // lies in the upper half of the 47-bit user space.
        if base & SAMPLED_ADDR_BIT != 0 && (end - 1) & SAMPLED_ADDR_BIT != 0 {
            return base;
        }
        // SAFETY: the mapping just made, unused.
        unsafe { libc::munmap(p as *mut libc::c_void, REGION_BYTES + SLOT_BYTES) };
    }
    0
}

/// FNV-1a over the frames and the size.
fn hash(stack: &[usize], size: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &w in stack.iter().chain(core::iter::once(&size)) {
        h ^= w as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h
}

/// Records a sampled allocation of `size` bytes at `stack`: its bucket
/// number, or `None` (counted as dropped) if there is no room.
pub(crate) fn record_alloc(stack: &[usize], size: usize) -> Option<u32> {
    let b = {
        let mut t = TABLE.lock();
        if !t.ready() {
            None
        } else {
            t.bucket(stack, size)
        }
    };
    match b {
        Some(b) => {
            bucket(b).allocs.fetch_add(1, Ordering::Relaxed);
            Some(b)
        }
        None => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Counts a free of an object sampled into bucket `b`.
pub(crate) fn record_free(b: u32) {
    bucket(b).frees.fetch_add(1, Ordering::Relaxed);
}

/// Bucket `b`, which exists.
fn bucket(b: u32) -> &'static Bucket {
    let buckets = BUCKETS.load(Ordering::Acquire);
    debug_assert!((b as usize) < NBUCKETS.load(Ordering::Relaxed));
    // SAFETY: bucket numbers are handed out only once written, and
    // buckets are never removed or moved.
    unsafe { &*buckets.add(b as usize) }
}

/// The buckets written so far, with the frames of each (lock-free: both
/// only grow, and the counts are atomics).
pub(crate) fn for_each_bucket(mut f: impl FnMut(&Bucket, &[usize])) {
    let n = NBUCKETS.load(Ordering::Acquire);
    if n == 0 {
        return;
    }
    let buckets = BUCKETS.load(Ordering::Acquire);
    let stacks = STACKS.load(Ordering::Acquire);
    for i in 0..n {
        // SAFETY: buckets below NBUCKETS are complete (Release/Acquire on
        // NBUCKETS), and so are their stack words.
        unsafe {
            let b = &*buckets.add(i);
            let frames =
                core::slice::from_raw_parts(stacks.add(b.stack_off as usize), b.depth as usize);
            f(b, frames);
        }
    }
}

/// A sampled small object of `class` (`size` requested bytes) recorded
/// at `stack`: the start of a slot of the region, its first `size` bytes
/// zero if `zeroed`, or null (counted as dropped) if there is no room.
pub(crate) fn alloc_small(stack: &[usize], size: usize, class: usize, zeroed: bool) -> *mut u8 {
    let p = {
        let mut t = TABLE.lock();
        if !t.ready() || t.region == 0 {
            None
        } else {
            let slot = if t.free_slot != 0 {
                Some(t.free_slot as usize - 1)
            } else if t.slot_bump < REGION_SLOTS {
                Some(t.slot_bump)
            } else {
                None
            };
            match (slot, slot.and_then(|_| t.bucket(stack, size))) {
                (Some(s), Some(b)) => {
                    // SAFETY: `s < REGION_SLOTS`, inside the slot records.
                    let rec = unsafe { &mut *t.slots.add(s) };
                    let dirty = rec.dirty as usize;
                    if s == t.slot_bump {
                        t.slot_bump += 1;
                    } else {
                        t.free_slot = rec.next_free;
                        t.dirty_free -= resident(dirty);
                    }
                    let bytes = crate::sizeclass::class_size(class);
                    rec.bucket = b + 1;
                    rec.class = class as u32;
                    rec.next_free = 0;
                    rec.dirty = dirty.max(bytes) as u32;
                    let clear = if zeroed { dirty.min(size) } else { 0 };
                    Some((t.region + s * SLOT_BYTES, b, clear))
                }
                _ => None,
            }
        }
    };
    match p {
        Some((addr, b, clear)) => {
            // SAFETY: the slot is ours now, and its first `clear` bytes are
            // inside it (at most the requested size).
            unsafe { ptr::write_bytes(addr as *mut u8, 0, clear) };
            bucket(b).allocs.fetch_add(1, Ordering::Relaxed);
            SMALL_ALLOCS[class].fetch_add(1, Ordering::Relaxed);
            addr as *mut u8
        }
        None => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            ptr::null_mut()
        }
    }
}

/// The OS pages `dirty` bytes from a slot's start occupy.
fn resident(dirty: usize) -> usize {
    dirty.next_multiple_of(crate::os::OS_PAGE_SIZE)
}

/// The slot `p` starts, if `p` is inside the region.
fn slot_of(p: *const u8) -> Option<(usize, bool)> {
    let region = REGION.load(Ordering::Acquire);
    let a = p as usize;
    if region == 0 || a < region || a >= region + REGION_BYTES {
        return None;
    }
    let off = a - region;
    Some((off / SLOT_BYTES, off % SLOT_BYTES == 0))
}

/// The size class of `p` if it is a live sampled small object.
pub(crate) fn small_class(p: *const u8) -> Option<usize> {
    let (s, at_start) = slot_of(p)?;
    let t = TABLE.lock();
    // SAFETY: `s < REGION_SLOTS`, inside the slot records.
    let rec = unsafe { &*t.slots.add(s) };
    (at_start && rec.bucket != 0).then_some(rec.class as usize)
}

/// Frees sampled small object `p`; false if `p` is not in the region.
/// A pointer into the region that is not a live object's start is
/// reported (double free, or an interior pointer).
///
/// # Safety
///
/// If `p` is a live sampled object, the caller gives it up.
pub(crate) unsafe fn free_small(p: *mut u8) -> bool {
    let Some((s, at_start)) = slot_of(p) else {
        return false;
    };
    let (bucket_no, class, release) = {
        let mut t = TABLE.lock();
        // SAFETY: `s < REGION_SLOTS`, inside the slot records.
        let rec = unsafe { &mut *t.slots.add(s) };
        if rec.bucket == 0 {
            drop(t);
            crate::report::fatal!(
                "free of {p:p}: a sampled (heap-profiled) object that is not live (double free, or \
                 a pointer goheap never returned)"
            );
        }
        if !at_start {
            let size = crate::sizeclass::class_size(rec.class as usize);
            drop(t);
            crate::report::fatal!("free of {p:p}: pointer into the middle of a {size}-byte object");
        }
        let r = (rec.bucket - 1, rec.class as usize);
        rec.bucket = 0;
        let pages = resident(rec.dirty as usize);
        if t.dirty_free + pages <= DIRTY_FREE_LIMIT {
            // Kept resident: on the free list at once.
            t.dirty_free += pages;
            rec.next_free = t.free_slot;
            t.free_slot = s as u32 + 1;
            (r.0, r.1, 0)
        } else {
            // Released first, then listed: off the list until then, so no
            // one is handed the slot while its pages go.
            rec.dirty = 0;
            (r.0, r.1, pages)
        }
    };
    if release != 0 {
        // SAFETY: the slot is ours (marked dead, not on the free list).
        unsafe {
            libc::madvise(
                (p as usize & !(SLOT_BYTES - 1)) as *mut libc::c_void,
                release,
                libc::MADV_DONTNEED,
            )
        };
        let mut t = TABLE.lock();
        let next = t.free_slot;
        // SAFETY: `s < REGION_SLOTS`, inside the slot records.
        unsafe { (*t.slots.add(s)).next_free = next };
        t.free_slot = s as u32 + 1;
    }
    record_free(bucket_no);
    SMALL_FREES[class].fetch_add(1, Ordering::Relaxed);
    true
}

/// Before `fork`: takes the table's lock and keeps it (a leaf lock, so
/// taken last) until [`postfork`].
pub(crate) fn prefork() {
    core::mem::forget(TABLE.lock());
}

/// After `fork`, in parent and child: releases the lock [`prefork`] took.
///
/// # Safety
///
/// The calling thread called [`prefork`] and no `postfork` since.
pub(crate) unsafe fn postfork() {
    // SAFETY: forwarded contract: `prefork` took it and forgot the guard.
    unsafe { TABLE.force_unlock() };
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// Enough distinct stacks to double the index several times: each
    /// finds its own bucket again afterwards, and a repeat is not a new
    /// bucket. (The stacks are made-up addresses: no profile the other
    /// tests check names them.)
    #[test]
    fn buckets_survive_the_index_growing() {
        let n = 5 * INDEX_FIRST_LEN;
        let stack = |i: usize| [0x7e57_0000_0000 + i * 16, 0x7e57_8000_0000, i];
        let first: Vec<u32> =
            (0..n).map(|i| record_alloc(&stack(i), 64 + i % 3).expect("room")).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), n, "distinct stacks share a bucket");
        assert!(TABLE.lock().index_len >= 2 * n, "the index did not grow");
        for (i, &b) in first.iter().enumerate() {
            assert_eq!(record_alloc(&stack(i), 64 + i % 3), Some(b), "stack {i}");
            assert_eq!(bucket(b).allocs.load(Ordering::Relaxed), 2);
            record_free(b);
            record_free(b);
        }
        // The same stack with another size is another bucket.
        let other = record_alloc(&stack(0), 1 << 20).unwrap();
        assert!(!first.contains(&other));
        record_free(other);
    }
}
