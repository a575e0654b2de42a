//! What runs inside the JVM on application threads, called from the `repair/rt/Hooks` natives
//! and the JVMTI events: the hooks class and its per-report counters, fault capture, the
//! circuit breakers and the recursion guards. Everything here is cheap on the hot path and never
//! blocks on the agent's own threads.

pub mod breakers;
pub mod faults;
pub mod hooks;
pub mod recursion;
