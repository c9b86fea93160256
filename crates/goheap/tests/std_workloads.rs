//! Real std workloads with goheap as the global allocator: collections,
//! strings, threads, channels.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

#[test]
fn collections_and_strings() {
    let mut map = HashMap::new();
    let mut tree = BTreeMap::new();
    for i in 0..200_000u64 {
        let k = format!("key-{i:08}");
        map.insert(k.clone(), i);
        tree.insert(k, vec![i; (i % 17) as usize]);
    }
    for i in (0..200_000u64).step_by(3) {
        let k = format!("key-{i:08}");
        assert_eq!(map.remove(&k), Some(i));
        assert_eq!(tree.remove(&k).unwrap().len(), (i % 17) as usize);
    }
    assert_eq!(map.len(), 200_000 - 66_667);
    let total: u64 = tree.values().map(|v| v.iter().sum::<u64>()).sum();
    let expect: u64 = (0..200_000u64)
        .filter(|i| i % 3 != 0)
        .map(|i| i * (i % 17))
        .sum();
    assert_eq!(total, expect);
    let mut s = String::new();
    for i in 0..100_000 {
        s.push_str(&i.to_string());
    }
    assert!(s.len() > 400_000);
    let mut dq: VecDeque<Box<[u8]>> = VecDeque::new();
    for i in 0..50_000usize {
        dq.push_back(vec![(i % 251) as u8; i % 5000].into_boxed_slice());
        if dq.len() > 100 {
            let b = dq.pop_front().unwrap();
            assert!(b.iter().all(|&x| x == b.first().copied().unwrap_or(0)));
        }
    }
}

#[test]
fn threads_and_channels() {
    let (tx, rx) = mpsc::channel::<Vec<u64>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..20_000u64 {
                    tx.send(vec![t * 1_000_000 + i; (i % 64) as usize + 1])
                        .unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut sum = 0u64;
        for v in rx {
            sum += v[0] * v.len() as u64;
        }
        sum
    });
    for p in producers {
        p.join().unwrap();
    }
    let sum = consumer.join().unwrap();
    let expect: u64 = (0..4u64)
        .flat_map(|t| (0..20_000u64).map(move |i| (t * 1_000_000 + i) * ((i % 64) + 1)))
        .sum();
    assert_eq!(sum, expect);
}

#[test]
fn large_and_aligned() {
    for &size in &[32 * 1024 + 1, 100_000, 1 << 20, 5 << 20] {
        let mut v = vec![0u8; size];
        v[size - 1] = 7;
        v.resize(size * 2, 1);
        assert_eq!(v[size - 1], 7);
        assert_eq!(v[size * 2 - 1], 1);
    }
    for shift in 0..21 {
        let align = 1usize << shift;
        let layout = std::alloc::Layout::from_size_align(24, align).unwrap();
        // SAFETY: non-zero size layout.
        let p = unsafe { std::alloc::alloc(layout) };
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0, "align {align}");
        // SAFETY: allocated above with this layout.
        unsafe { std::alloc::dealloc(p, layout) };
    }
}

#[test]
fn goheap_served_the_allocations() {
    let before = goheap::memstats();
    let v: Vec<Box<u64>> = (0..10_000).map(Box::new).collect();
    let mid = goheap::memstats();
    assert!(
        mid.mallocs >= before.mallocs + 10_000,
        "{} -> {}",
        before.mallocs,
        mid.mallocs
    );
    assert!(mid.heap_alloc >= 80_000);
    assert!(mid.heap_inuse >= mid.heap_alloc);
    assert!(mid.heap_sys >= mid.heap_inuse);
    drop(v);
    let after = goheap::memstats();
    assert!(after.frees >= mid.frees + 10_000);
}
