//! What runs inside the JVM on application threads, called from the `repair/rt/Hooks` natives
//! and the JVMTI events: the hooks class and its per-report counters, fault capture, the
//! circuit breakers and the recursion guards. Everything here is cheap on the hot path and never
//! blocks on the agent's own threads.

pub mod breakers;
pub mod clock;
pub mod faults;
pub mod hooks;
pub mod recursion;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by an `i32` that is already well spread or small and distinct (report ids,
/// identity hashes), looked up on application threads: no SipHash per lookup.
pub type IntMap<V> = HashMap<i32, V, BuildHasherDefault<IntHasher>>;

/// Hashes an `i32` by one multiplication (Fibonacci hashing), which also fills the high bits
/// the map's probing compares first.
#[derive(Default)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i32(&mut self, n: i32) {
        self.0 = u64::from(n as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
