//! What Go's tiny allocator saves: 10⁷ live noscan objects of 1 to MAX
//! bytes (sizes cycling 1, 2, …, MAX; MAX 15 and 8 by default), with the
//! tiny allocator and without it (each object in its own slot of the
//! smallest class that fits), as bytes of collected-heap spans.
//!
//! ```text
//! cargo run --release -p goheap-gc --example tiny_savings [N [MAX]]
//! ```

use goheap_gc::Gc;

macro_rules! sized {
    ($($n:literal => $v:ident),* $(,)?) => {
        #[allow(dead_code, reason = "held only to keep the objects live")]
        enum Tiny { $($v(Gc<[u8; $n]>)),* }
        fn make(i: usize, max: usize) -> Tiny {
            match i % max + 1 {
                $($n => Tiny::$v(Gc::new([i as u8; $n])),)*
                _ => unreachable!(),
            }
        }
    };
}

sized!(1 => S1, 2 => S2, 3 => S3, 4 => S4, 5 => S5, 6 => S6, 7 => S7, 8 => S8,
       9 => S9, 10 => S10, 11 => S11, 12 => S12, 13 => S13, 14 => S14, 15 => S15);

/// Span bytes for `n` live objects of 1 to `max` bytes.
fn measure(n: usize, max: usize) -> u64 {
    goheap_gc::collect();
    let spans0 = goheap_gc::stats().span_bytes;
    let live: Vec<Tiny> = (0..n).map(|i| make(i, max)).collect();
    goheap_gc::collect();
    let spans = goheap_gc::stats().span_bytes - spans0;
    drop(live);
    spans
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| {
        a.parse::<usize>().unwrap_or_else(|_| {
            eprintln!("usage: tiny_savings [N [MAX]]   (MAX from 1 to 15)");
            std::process::exit(2)
        })
    });
    let n = args.next().unwrap_or(10_000_000);
    let maxes = match args.next() {
        Some(m) if (1..=15).contains(&m) => vec![m],
        Some(_) => {
            eprintln!("MAX must be from 1 to 15");
            std::process::exit(2)
        }
        None => vec![15, 8],
    };
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("{n} live noscan objects, spans of the collected heap (MiB)");
    println!("sizes     tiny allocator   one slot each   saved");
    for max in maxes {
        let tiny = measure(n, max);
        goheap_gc::set_tiny_allocator(false);
        let plain = measure(n, max);
        goheap_gc::set_tiny_allocator(true);
        println!(
            "1-{max:<2} B {:>16.1} {:>15.1} {:>6.0}%",
            mib(tiny),
            mib(plain),
            100.0 * (1.0 - tiny as f64 / plain as f64)
        );
    }
}
