//! What `GcRefCell` checks at run time, and that handles moved through a
//! mutable borrow stay counted.

use goheap_gc::{Gc, GcMutex, GcRefCell};

#[test]
fn conflicting_borrows_are_refused() {
    let c = Gc::new(GcRefCell::new(vec![Gc::new(1u32)]));
    {
        let r1 = c.borrow();
        let r2 = c.borrow();
        assert_eq!(*r1[0] + *r2[0], 2);
        assert!(c.try_borrow_mut().is_err());
    }
    {
        let _w = c.borrow_mut();
        assert!(c.try_borrow().is_err());
        assert!(c.try_borrow_mut().is_err());
        assert_eq!(
            c.try_borrow().err().map(|e| e.to_string()).as_deref(),
            Some("GcRefCell already mutably borrowed")
        );
    }
    assert!(c.try_borrow_mut().is_ok());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _a = c.borrow_mut();
        let _b = c.borrow_mut();
    }));
    assert!(r.is_err(), "a second mutable borrow panics");
    // The cell is usable after the panic (the first guard dropped while
    // unwinding).
    c.borrow_mut().push(Gc::new(2));
    assert_eq!(c.borrow().len(), 2);
}

#[test]
fn handles_taken_out_and_put_back_survive_collections() {
    let c = Gc::new(GcRefCell::new(Vec::new()));
    for i in 0..1000u64 {
        c.borrow_mut().push(Gc::new(i));
    }
    // Taken out under the guard: counted as roots while the guard lives,
    // and counted as ordinary handles once out.
    let taken: Vec<Gc<u64>> = {
        let mut g = c.borrow_mut();
        goheap_gc::collect();
        g.drain(..500).collect()
    };
    goheap_gc::collect();
    assert!(taken.iter().enumerate().all(|(i, x)| **x == i as u64));
    assert!(c
        .borrow()
        .iter()
        .enumerate()
        .all(|(i, x)| **x == 500 + i as u64));
    // Put back, the stack's copies dropped: still reachable through the
    // cell.
    c.borrow_mut().extend(taken);
    goheap_gc::collect();
    let sum: u64 = c.borrow().iter().map(|x| **x).sum();
    assert_eq!(sum, (0..1000).sum());
    // `replace` and `take` go through `borrow_mut`.
    let old = c.replace(vec![Gc::new(7)]);
    goheap_gc::collect();
    assert_eq!(old.len(), 1000);
    assert_eq!(*c.take()[0], 7);
    assert!(c.borrow().is_empty());
}

#[test]
fn a_mutex_waits_instead_of_panicking() {
    let m = Gc::new(GcMutex::new(0u64));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*m.read(), 4000);
}
