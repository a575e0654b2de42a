//! Recursion guards: the state behind `Hooks.recursionEnter/Exit`. Each recursion patch has a
//! depth (keyed by its report id); each thread counts the calls of each guarded method open on it.
//! A call made while the depth's worth are open does not run its body (the method returns its
//! fallback) and leaves the count as it was; every call that runs counts up at entry and down on
//! its way out, by a return or an exception.
//!
//! The counts are per thread and need no lock; the depths are read under a read lock, as the
//! breakers' state is. A thread counts calls whether or not the patch is still registered, so a
//! call that entered before a rollback still counts down when it leaves.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::RwLock;

use repair_model::spec::{Action, PatchSpec};

/// The depth of each recursion patch in effect, by report id.
#[derive(Default)]
pub struct RecursionGuards {
    depths: RwLock<HashMap<i32, u32>>,
}

thread_local! {
    /// `(report id, calls open)` of the guarded methods this thread is inside; a few entries at
    /// most, so a scan beats a map.
    static OPEN: RefCell<Vec<(i32, u32)>> = const { RefCell::new(Vec::new()) };
}

impl RecursionGuards {
    /// Records the depth of a recursion patch before its code can run (no-op for other patches).
    pub fn register(&self, report_id: i32, spec: &PatchSpec) {
        if let Action::Recursion { depth, .. } = &spec.action {
            self.depths.write().unwrap_or_else(|e| e.into_inner()).insert(report_id, *depth);
        }
    }

    /// Forgets a recursion patch that is gone: a call still running its code then always runs.
    pub fn unregister(&self, report_id: i32) {
        self.depths.write().unwrap_or_else(|e| e.into_inner()).remove(&report_id);
    }

    /// `Hooks.recursionEnter`: whether the body runs (`false`: return the fallback).
    pub fn enter(&self, id: i32) -> bool {
        let depth = self.depths.read().unwrap_or_else(|e| e.into_inner()).get(&id).copied();
        // A thread past its thread-locals' end (exiting) runs the body uncounted.
        OPEN.try_with(|open| {
            let mut open = open.borrow_mut();
            let at = open.iter().position(|(i, _)| *i == id);
            let calls = at.map_or(0, |a| open[a].1);
            if depth.is_some_and(|d| calls >= d) {
                return false;
            }
            match at {
                Some(a) => open[a].1 += 1,
                None => open.push((id, 1)),
            }
            true
        })
        .unwrap_or(true)
    }

    /// `Hooks.recursionExit`: a call that ran its body leaves it.
    pub fn exit(&self, id: i32) {
        let _ = OPEN.try_with(|open| {
            let mut open = open.borrow_mut();
            if let Some(a) = open.iter().position(|(i, _)| *i == id) {
                open[a].1 -= 1;
                if open[a].1 == 0 {
                    open.swap_remove(a);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(depth: u32) -> PatchSpec {
        PatchSpec::from_yaml(
            &format!("id: r\ntarget: {{ class: a.B, method: f }}\naction:\n  recursion: {{ depth: {depth}, fallback: default }}\n"),
            "r.yaml",
        )
        .unwrap()
    }

    #[test]
    fn past_the_depth_calls_are_refused_without_counting_and_exits_count_down() {
        let guards = RecursionGuards::default();
        guards.register(7, &guard(2));
        assert!(guards.enter(7) && guards.enter(7), "two calls open");
        assert!(!guards.enter(7) && !guards.enter(7), "a third is refused, and refusals do not count");
        guards.exit(7);
        assert!(guards.enter(7), "one left: another may run");
        assert!(!guards.enter(7));
        // Another thread has its own count.
        std::thread::scope(|s| {
            s.spawn(|| assert!(guards.enter(7) && guards.enter(7) && !guards.enter(7)));
        });
        guards.exit(7);
        guards.exit(7);
        assert!(guards.enter(7) && guards.enter(7) && !guards.enter(7), "back to none open");
        guards.exit(7);
        guards.exit(7);
        // Unregistered: every call runs, and is still counted for the exits to come.
        guards.unregister(7);
        assert!((0..5).all(|_| guards.enter(7)));
        (0..5).for_each(|_| guards.exit(7));
        guards.register(7, &guard(1));
        assert!(guards.enter(7) && !guards.enter(7), "the count is balanced after the unregistered calls");
        guards.exit(7);
        guards.exit(7); // an exit with none open (a call that entered before the patch) changes nothing
        assert!(guards.enter(7) && !guards.enter(7));
    }
}
