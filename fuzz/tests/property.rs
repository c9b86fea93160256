//! The `ops` fuzz target's decoder and model check (`src/lib.rs`) fed
//! seeded pseudo-random inputs for a bounded time, on stable and without
//! libFuzzer: the fuzz step of `.ci/run`.
//!
//! ```sh
//! cargo test --manifest-path fuzz/Cargo.toml --no-default-features --release --test property -- --nocapture
//! ```
//!
//! `GOHEAP_FUZZ_SECS` bounds the run (default 60 when `CI` is set, else 5);
//! `GOHEAP_FUZZ_SEED` picks the seed (default: from the clock; printed
//! either way). A failing input is written to
//! `fuzz/artifacts/ops/property-SEED-N`, which `cargo fuzz run ops FILE`
//! replays.

use goheap_fuzz::{run_ops, OP_BYTES};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Inputs up to this long, like `-max_len=600` for `cargo fuzz run`.
const MAX_LEN: usize = 600;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
    )
}

/// Input number `n` of the run seeded with `seed`: its own generator, so
/// one input can be regenerated without the ones before it.
fn input(seed: u64, n: u64) -> Vec<u8> {
    let mut rng = Rng(seed ^ n.wrapping_mul(0xd134_2543_de82_ef95));
    // Mostly long sequences (many live blocks, reuse after frees), some
    // short ones, and lengths that are not a multiple of OP_BYTES.
    let len = match rng.below(4) {
        0 => rng.below(10 * OP_BYTES),
        _ => rng.below(MAX_LEN + 1),
    };
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

fn save_failure(seed: u64, n: u64, data: &[u8]) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/ops");
    let path = dir.join(format!("property-{seed}-{n}"));
    match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, data)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not saved: {e})"),
    }
}

#[test]
fn seeded_op_sequences_match_the_model() {
    let default_secs = if std::env::var_os("CI").is_some() {
        60
    } else {
        5
    };
    let secs = env_u64("GOHEAP_FUZZ_SECS").unwrap_or(default_secs);
    let seed = env_u64("GOHEAP_FUZZ_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("property: seed {seed} (GOHEAP_FUZZ_SEED), {secs} s (GOHEAP_FUZZ_SECS)");
    let budget = Duration::from_secs(secs);
    let start = Instant::now();
    let (mut inputs, mut ops) = (0u64, 0u64);
    // At least one input, even with GOHEAP_FUZZ_SECS=0.
    while inputs == 0 || start.elapsed() < budget {
        let data = input(seed, inputs);
        let r = std::panic::catch_unwind(|| run_ops(&data));
        if let Err(e) = r {
            let saved = save_failure(seed, inputs, &data);
            eprintln!(
                "property: input {inputs} of seed {seed} failed ({} bytes, saved to {saved})",
                data.len()
            );
            std::panic::resume_unwind(e);
        }
        ops += (data.len() / OP_BYTES) as u64;
        inputs += 1;
    }
    eprintln!(
        "property: {inputs} inputs, {ops} operations in {:.1} s, all matched the model",
        start.elapsed().as_secs_f64()
    );
}
