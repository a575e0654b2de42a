//! `repairctl help TOPIC`: the file formats repairctl reads, beside the commands' own help.

/// The topics by name, each with a one-line summary and its text.
pub const TOPICS: &[(&str, &str, &str)] = &[
    ("spec", "the patch spec (repairctl apply, repairctl rewrite)", SPEC),
    ("policy", "the self-healing policy file (repairctl policy apply, policy= at load)", POLICY),
];

/// The text of `topic`, if there is one by that name.
pub fn topic(name: &str) -> Option<&'static str> {
    TOPICS.iter().find(|(n, _, _)| *n == name).map(|(_, _, t)| *t)
}

/// The list of topics, for `repairctl help` and the main help's footer.
pub fn list() -> String {
    TOPICS.iter().map(|(n, s, _)| format!("  {n:<8} {s}\n")).collect()
}

const SPEC: &str = r#"THE PATCH SPEC

One YAML file per patch, read by `repairctl apply SPEC` (live) and `repairctl rewrite SPEC IN --out OUT`
(offline). Errors name the file, the line and the field, and a spec that does not parse changes nothing.

  id: price-npe                      # the patch's name: rollback, history and events use it
  target:
    class: repair.demo.PriceService  # dotted class name
    method: "price(Ljava/lang/String;)J"   # name, or name and JVM descriptor when overloaded
  action:                            # exactly one of guard, swap, probe, breaker, recursion, redefine, rethrow, oblivious
    guard: { catch: [java.lang.NullPointerException], fallback: { value: 0 } }
  durable: true                      # put back when the JVM starts again with the same state dir

ACTIONS

  guard     catch the listed exceptions (default java.lang.Throwable) and return the fallback
              catch:    [java.lang.NullPointerException, ...]
              fallback: default | null | {value: X} | {arg: N} | {method: pkg.Class.name}
              call:     {method: NAME, owner: CLASS, occurrence: N}   guard one call site only
  swap      replace the method's body with the one in a class compiled from the fixed source
              class_file: Fixed.class          (relative to the spec; attached by repairctl apply)
  probe     observe without changing behaviour (events and the JVM's log)
              at:      [entry, exit, throw, "line:N"]
              capture: [args, return, time]
  breaker   a circuit breaker: after `failures` within `window` it opens and returns the fallback
            without running the body for `cooldown`, then lets one trial call through
              failures: 5, window: 10s, cooldown: 5s, fallback: {value: 0}
  recursion a recursion guard: on each thread, a call made while `depth` calls of the method are
            open there returns the fallback without running its body (1 to 100000; no default
            fallback: say which value means too deep)
              depth: 200, fallback: default
  oblivious failure-oblivious array access: out of bounds, an array read yields the element's
            default (0, 0.0, false, null) and a write is dropped, each counted as a fallback; a null
            array still throws NullPointerException
              line: N                          only the array accesses of this source line (optional)
  redefine  replace the whole class with a class file of a fixed build (target: no method); the
            other patches of the class apply on top of it, whatever order they came in
              class_file: Cart.class           (relative to the spec; attached by repairctl apply)
              original: SHA256 | [SHA256, ...] only over the class with this hash (optional)
            For a whole build, `repairctl deploy BUILD.jar` plans and redefines every changed class.
  rethrow   catch the listed exceptions and throw instead a new `as`, which a caller already
            handles (its message and cause from the caught one, as its constructors allow)
              catch: [java.lang.NumberFormatException], as: java.io.IOException
            `as` must be unchecked or declared in the method's throws clause.

Durations: 500ms, 10s, 2m. Every transform refuses what RedefineClasses cannot do (adding or
removing members, changing signatures, modifiers or the hierarchy) and names the member. A JDK
class (java.*, javax.*, jdk.*, sun.*, com.sun.*) needs `repairctl apply --allow-jdk`.

EXAMPLES

  repairctl apply demo/price-npe.yaml --pid 4242
  repairctl rewrite demo/price-npe.yaml shop.jar --out shop-fixed.jar
  repairctl diff price-npe           # what the patch did to the method's bytecode
"#;

const POLICY: &str = r#"THE SELF-HEALING POLICY

A YAML file of rules that repair faults as they happen: `policy=FILE` in the agent's options at
load, or `repairctl policy apply FILE` live (`repairctl policy show`: the policy in force and
what each rule did). A policy that does not parse changes nothing; errors name the line and field.

  mode: enforce                       # or dry-run: report what would be applied
  limits: { repairs_per_minute: 10, active_patches: 50 }
  application: ["repair.demo.*"]      # the application's own packages, for localization
  rules:
    - name: price-npe
      when: { exception: java.lang.NullPointerException, in: "repair.demo.*", message: "regex",
              count: 3, within: 10s }
      then:                           # escalation order: the next action when one fails
        - guard: { call: auto, catch: [java.lang.NullPointerException], fallback: { value: 0 } }
        - guard: { catch: [java.lang.NullPointerException], fallback: { value: 0 } }
        - { breaker: { failures: 5, window: 10s, cooldown: 5s, fallback: { value: 0 } }, at: caller }
      validate: { window: 2s, max_fallback_rate: 0.9 }
      durable: true                   # a repair that holds is kept across restarts

WHEN

  exception   the class or a superclass of the fault (required)
  in          a glob on the throwing class.method
  message     a regex on the exception's message
  caught      true: only faults a handler catches; false: only those that kill the thread
              (needs faults=jvmti in the agent's options)
  count, within   how many matching faults in what time fire the rule (default 1 in 60s)

THEN

  Actions as in a patch spec (repairctl help spec) without target and id: the fault's site is the
  target. `at: caller` aims an action at the first caller in application code; `call: auto`
  guards only the call that threw. `rethrow: { catch: [fault], as: auto }` throws instead the type
  of a handler an application frame above has around its call (refused when none has one: the
  next action follows). `allow_jdk: true` on a rule lets it patch JDK classes.
  `oblivious: {}` makes the site's array accesses failure-oblivious (an ArrayIndexOutOfBounds
  fault's first try); every access made oblivious counts as a fallback, so one call may count
  several and the fallback rate may pass 1.0.

VALIDATE

  After a repair, for `window` (default 30s): rolled back when faults of another kind pass
  through the method, when the repaired fault still happens, or when the fallback rate is above
  `max_fallback_rate` (default 1.0); then the rule's next action is tried.

EXAMPLES

  repairctl policy apply demo/policy.yaml
  repairctl policy show -o yaml
  repairctl events --follow          # what the rules decide and do, with reasons
"#;
