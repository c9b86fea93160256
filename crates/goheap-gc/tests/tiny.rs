//! Go's tiny allocator: noscan objects under 16 bytes share 16-byte
//! blocks, aligned by their size (8 for a multiple of 8, 4 of 4, 2 of 2),
//! and a block is freed once none of its objects is reachable.

use std::sync::Mutex;

use goheap_gc::Gc;

/// The tests change and measure process-wide state: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn addr<T: goheap_gc::Trace>(g: &Gc<T>) -> usize {
    Gc::as_ptr(g) as usize
}

#[test]
fn tiny_objects_share_blocks_with_gos_alignment() {
    let _s = serial();
    // Each allocation, then where it went.
    let a = Gc::new([1u8; 1]);
    let b = Gc::new([2u8; 2]);
    let c = Gc::new([3u8; 4]);
    let d = Gc::new([4u8; 8]);
    let (a, b, c, d) = (a, b, c, d);
    assert_eq!(addr(&b) % 2, 0);
    assert_eq!(addr(&c) % 4, 0);
    assert_eq!(addr(&d) % 8, 0);
    // 1 + (pad 1) 2 + 4 = 8 bytes: a, b and c share the block; d (8, at
    // offset 8) fills it.
    let block = addr(&a) & !15;
    for x in [addr(&b), addr(&c), addr(&d)] {
        assert_eq!(x & !15, block, "{x:#x} in the block at {block:#x}");
    }
    assert_eq!(addr(&b) - block, 2);
    assert_eq!(addr(&c) - block, 4);
    assert_eq!(addr(&d) - block, 8);
    // The next does not fit: a new block.
    let e = Gc::new([5u8; 3]);
    assert_ne!(addr(&e) & !15, block);
    // Odd sizes are byte-aligned and packed.
    let f = Gc::new([6u8; 5]);
    assert_eq!(addr(&f), addr(&e) + 3);
    assert_eq!(
        (*a, *b, *c, *d, *e, *f),
        ([1], [2; 2], [3; 4], [4; 8], [5; 3], [6; 5])
    );
    // Objects of 16 bytes or more, and objects holding handles, never share.
    let g = Gc::new([7u8; 16]);
    assert_eq!(addr(&g) % 16, 0);
}

#[test]
fn a_block_lives_while_any_of_its_objects_is_reachable() {
    let _s = serial();
    goheap_gc::collect();
    let mut kept = Vec::new();
    let mut all = Vec::new();
    for i in 0..100_000u32 {
        let x = Gc::new(i as u16);
        if i % 8 == 0 {
            kept.push(x.clone());
        }
        all.push(x);
    }
    drop(all);
    goheap_gc::collect();
    // Every eighth object keeps its block (and its neighbours' bytes).
    for (i, x) in kept.iter().enumerate() {
        assert_eq!(**x, (i * 8) as u16);
    }
    let with_kept = goheap_gc::stats();
    drop(kept);
    goheap_gc::collect();
    let none = goheap_gc::stats();
    // 100 000 two-byte objects are 12 500 blocks; the kept eighth held
    // every block (one object per block of eight): all freed now.
    assert!(
        none.frees >= with_kept.frees + 12_000,
        "tiny blocks freed: {} -> {}",
        with_kept.frees,
        none.frees
    );
}

#[test]
fn tiny_blocks_take_under_half_the_memory_of_a_slot_each() {
    let _s = serial();
    // 10⁶ here (10⁷ in the example `tiny_savings`): live 1–15-byte objects,
    // bytes of spans with and without the tiny allocator.
    fn span_bytes_for(n: usize) -> u64 {
        goheap_gc::collect();
        let before = goheap_gc::stats().span_bytes;
        let live: Vec<Gc<[u8; 3]>> = (0..n).map(|i| Gc::new([i as u8; 3])).collect();
        goheap_gc::collect();
        let bytes = goheap_gc::stats().span_bytes - before;
        assert!(live.iter().enumerate().all(|(i, x)| x[2] == i as u8));
        drop(live);
        goheap_gc::collect();
        bytes
    }
    let shared = span_bytes_for(1_000_000);
    let old = goheap_gc::set_tiny_allocator(false);
    let alone = span_bytes_for(1_000_000);
    goheap_gc::set_tiny_allocator(old);
    // 3-byte objects: five to a 16-byte block, or an 8-byte slot each.
    assert!(
        shared * 2 < alone,
        "with tiny blocks {shared} bytes, without {alone}"
    );
}

#[test]
fn zeroed_buffers_of_every_size_are_zero_even_in_reused_memory() {
    let _s = serial();
    fn dirty_then_zeroed<const N: usize>() {
        // Fill some objects of the size with ones, let them die, then ask
        // for zeroed ones: the slots are reused and must read zero.
        for _ in 0..3 {
            let junk: Vec<Gc<[u8; N]>> = (0..64).map(|_| Gc::new([0xff; N])).collect();
            drop(junk);
            goheap_gc::collect();
            let fresh: Vec<Gc<[u8; N]>> = (0..64).map(|_| Gc::<[u8; N]>::new_zeroed()).collect();
            assert!(fresh.iter().all(|b| b.iter().all(|&x| x == 0)), "{N} bytes");
        }
    }
    dirty_then_zeroed::<8>();
    dirty_then_zeroed::<32>();
    dirty_then_zeroed::<256>();
    dirty_then_zeroed::<1024>();
    dirty_then_zeroed::<10240>();
    // 1 MiB: a large object, never on the stack (`Gc::new([0; 1 << 20])`
    // would build it there first).
    for _ in 0..3 {
        let big = Gc::<[u8; 1 << 20]>::new_zeroed();
        assert!(big.iter().all(|&x| x == 0));
        drop(big);
        goheap_gc::collect();
    }
}

#[test]
fn small_objects_with_handles_have_no_header() {
    let _s = serial();
    #[derive(goheap_gc::Trace)]
    struct Pair {
        a: Option<Gc<Pair>>,
        b: Option<Gc<Pair>>,
    }
    // A typed span class: 16-byte slots for a 16-byte value.
    let pairs: Vec<Gc<Pair>> = (0..64)
        .map(|_| Gc::new(Pair { a: None, b: None }))
        .collect();
    let spaced = pairs
        .windows(2)
        .filter(|w| Gc::as_ptr(&w[1]) as usize - Gc::as_ptr(&w[0]) as usize == 16)
        .count();
    assert!(spaced >= 60, "{spaced} of 63 pairs 16 bytes apart");
    assert!(pairs.iter().all(|p| p.a.is_none() && p.b.is_none()));
}
