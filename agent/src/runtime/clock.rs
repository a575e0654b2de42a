//! The hooks' clock: a traced call reads it four times and a watched call twice, on the
//! application's thread. Where the CPU's time-stamp counter is invariant it is read directly
//! (quanta calibrates it against the monotonic clock once: under load a read costs about a third
//! of `clock_gettime`'s); elsewhere quanta reads the monotonic clock.

use std::sync::OnceLock;

/// A point in time as the clock's raw reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(u64);

struct Clock {
    clock: quanta::Clock,
    /// A reading and the wall-clock time (ms since the epoch) it was taken at.
    base: (u64, u64),
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

fn clock() -> &'static Clock {
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        let base = (clock.raw(), repair_model::journal::now_ms());
        Clock { clock, base }
    })
}

/// Calibrates the clock now (under a millisecond), so that no application thread does it on
/// its first observed call.
pub fn calibrate() {
    clock();
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp(clock().clock.raw())
    }

    /// The clock's raw reading, to keep as a number ([`Stamp::from_raw`] gives the stamp back).
    pub fn raw(self) -> u64 {
        self.0
    }

    pub fn from_raw(raw: u64) -> Stamp {
        Stamp(raw)
    }

    /// Nanoseconds from `self` to `later` (0 when `later` is earlier).
    pub fn ns_until(self, later: Stamp) -> u64 {
        clock().clock.delta_as_nanos(self.0, later.0)
    }

    pub fn elapsed_ns(self) -> u64 {
        self.ns_until(Stamp::now())
    }

    /// Milliseconds since the epoch at this stamp.
    pub fn epoch_ms(self) -> u64 {
        let c = clock();
        let (raw, ms) = c.base;
        match self.0 >= raw {
            true => ms + c.clock.delta_as_nanos(raw, self.0) / 1_000_000,
            false => ms.saturating_sub(c.clock.delta_as_nanos(self.0, raw) / 1_000_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Stamp;
    use std::time::{Duration, Instant};

    #[test]
    fn stamps_measure_what_the_monotonic_clock_measures_and_tell_the_wall_time() {
        let (stamp, instant) = (Stamp::now(), Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let (ns, real) = (stamp.elapsed_ns(), instant.elapsed().as_nanos() as u64);
        assert!(ns >= 30_000_000 && ns.abs_diff(real) < 2_000_000, "{ns} ns by the stamps, {real} ns really");
        assert_eq!(Stamp::now().ns_until(stamp), 0, "an earlier stamp is no time away");
        let wall = repair_model::journal::now_ms();
        assert!(Stamp::now().epoch_ms().abs_diff(wall) <= 5, "{} vs {wall}", Stamp::now().epoch_ms());
    }
}
