//! Every workload, in-process at a tiny scale, under goheap as the global
//! allocator: it must finish, and give the same checksum twice (the
//! checksums depend only on the data allocated, so a difference means
//! memory was corrupted).

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

#[test]
fn every_workload_is_deterministic_under_goheap() {
    for w in goheap_workloads::WORKLOADS {
        let a = (w.run)(0.002);
        let b = (w.run)(0.002);
        assert_eq!(a, b, "workload {} gave two checksums", w.name);
    }
}

#[test]
fn workloads_scale_down() {
    // A larger scale does more work, so (with overwhelming probability) a
    // different checksum: the scale really reaches the workload.
    for w in goheap_workloads::WORKLOADS {
        assert_ne!((w.run)(0.002), (w.run)(0.004), "workload {}", w.name);
    }
}

#[test]
fn standalone_workloads_are_deterministic_under_goheap() {
    // bursty churns for a fixed time, so does a different amount of work
    // each run; its checksum must not depend on that.
    for w in goheap_workloads::STANDALONE {
        let a = (w.run)(0.01);
        let b = (w.run)(0.01);
        assert_eq!(a, b, "workload {} gave two checksums", w.name);
    }
}
