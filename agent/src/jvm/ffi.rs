//! The agent's `extern "C"` surface: the JVMTI event callbacks and the native methods of
//! `repair/rt/Hooks` (the `Agent_OnLoad`/`Agent_OnAttach` exports in `lib.rs` come through
//! [`agent_load`]). Each turns raw pointers into the safe handles of this module and runs the
//! agent's code under `catch_unwind`: a panic never reaches the JVM.
//!
//! This is the one place the agent is reached from the JVM: it registers itself here as the
//! [`VmEvents`] and [`HookCalls`] implementation at load, and everything below gets its parts
//! handed down from there.

use std::ffi::{c_char, c_uchar, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use super::{c_string, sys, CallArgs, Captured, JavaVm, Jni, Jvmti, JvmtiError, Local, MethodId, Packed, Primitive};

/// The JVMTI `Exception` event, in safe handles.
pub struct ExceptionEvent<'a> {
    pub exception: Local<'a>,
    /// The method and bytecode index of the handler that will catch it; `None`: uncaught.
    pub catch: Option<(MethodId, i64)>,
}

/// What the JVM's events are handed to.
pub trait VmEvents: Sync {
    fn vm_init(&self, jni: &Jni<'_>);
    fn vm_death(&self, jni: &Jni<'_>);
    /// New bytes for the class, or `None` to leave them as they are.
    fn class_file_load(&self, jni: &Jni<'_>, name: Option<&str>, redefining: bool, bytes: &[u8]) -> Option<Vec<u8>>;
    fn exception(&self, jni: &Jni<'_>, event: &ExceptionEvent<'_>);
}

/// What the natives of `repair/rt/Hooks` call (the contract is in `runtime::hooks`). An object a
/// hook is passed is `None` when this thread is already inside a hook that reads one: reading it
/// (its class name, `toString`, a message) runs Java, and that Java may itself be probed, so the
/// nested hook only counts; the agent never observes, or recurses into, itself.
pub trait HookCalls: Sync {
    fn fallback(&self, jni: &Jni<'_>, id: i32, thrown: Option<&Local<'_>>);
    fn enter(&self, jni: &Jni<'_>, id: i32, nanos: Option<i64>);
    fn enter_args(&self, jni: &Jni<'_>, id: i32, args: Option<&CallArgs<'_, '_>>);
    fn exit(&self, jni: &Jni<'_>, id: i32, nanos: Option<i64>);
    fn exit_value(&self, jni: &Jni<'_>, id: i32, value: Option<Captured<'_, '_>>);
    fn thrown(&self, jni: &Jni<'_>, id: i32, thrown: Option<&Local<'_>>);
    fn line(&self, id: i32, line: i32);
    /// A traced method is about to make call `site`, or the call returned (`transform::trace`).
    fn call_enter(&self, id: i32, site: i32);
    fn call_exit(&self, id: i32, site: i32);
    /// A snapshot point was reached with the live locals (`transform::snapshot`).
    fn snapshot(&self, jni: &Jni<'_>, id: i32, locals: Option<&Local<'_>>);
    /// Whether the body runs (`false`: the breaker returns its fallback).
    fn breaker_enter(&self, id: i32) -> bool;
    fn breaker_exit(&self, id: i32);
    fn breaker_thrown(&self, jni: &Jni<'_>, id: i32, thrown: Option<&Local<'_>>);
    /// Whether the body runs (`false`: the recursion guard returns its fallback).
    fn recursion_enter(&self, id: i32) -> bool;
    fn recursion_exit(&self, id: i32);
}

static EVENTS: OnceLock<&'static dyn VmEvents> = OnceLock::new();
static HOOKS: OnceLock<&'static dyn HookCalls> = OnceLock::new();

/// Panics logged before the agent only counts them: a hook that panics on every call must not
/// fill the JVM's stderr, where a full pipe would block the application's threads.
const LOGGED_PANICS: u64 = 10;
static PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Installs a panic hook that writes the first [`LOGGED_PANICS`] panics (with where), then one
/// line in a million: the default hook writes each one, with a backtrace when asked.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let n = PANICS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n < LOGGED_PANICS || n % 1_000_000 == 0 {
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            eprintln!("repair: panic{at} (panic number {})", n + 1);
        }
    }));
}

/// Runs `f`; a panic is logged (the first few) and replaced by `fallback`.
fn guarded<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            // Counted by the panic hook (quiet_panics), which has run already.
            let n = PANICS.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(1);
            if n < LOGGED_PANICS || n % 1_000_000 == 0 {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                eprintln!(
                    "repair: internal error in {what}: {why}; the agent stays passive for this event ({} so far)",
                    n + 1
                );
            }
            fallback
        }
    }
}

/// `Agent_OnLoad` / `Agent_OnAttach`: hands the VM and the option string to `load`, whose
/// return code goes back to the JVM; a panic returns `JNI_ERR`.
pub fn agent_load(
    what: &str,
    vm: *mut sys::JavaVM,
    options: *const c_char,
    load: impl FnOnce(JavaVm, &str) -> i32,
) -> i32 {
    quiet_panics();
    guarded(what, sys::JNI_ERR, || load(JavaVm::from_raw(vm), &c_string(options).unwrap_or_default()))
}

/// Installs the event callbacks, which go to `events` from now on (events still need enabling
/// one by one). Only the first registration counts: one agent per library.
pub fn install_callbacks(jvmti: Jvmti, events: &'static dyn VmEvents) -> Result<(), JvmtiError> {
    let _ = EVENTS.set(events);
    let callbacks = sys::jvmtiEventCallbacks {
        VMInit: Some(on_vm_init),
        VMDeath: Some(on_vm_death),
        ClassFileLoadHook: Some(on_class_file_load_hook),
        Exception: Some(on_exception),
        ..Default::default()
    };
    jvmti.set_callbacks(&callbacks)
}

unsafe extern "C" fn on_vm_init(_jvmti: *mut sys::jvmtiEnv, jni: *mut sys::JNIEnv, _thread: sys::jthread) {
    guarded("VMInit", (), || {
        if let Some(e) = EVENTS.get() {
            e.vm_init(&Jni::from_raw(jni))
        }
    })
}

unsafe extern "C" fn on_vm_death(_jvmti: *mut sys::jvmtiEnv, jni: *mut sys::JNIEnv) {
    guarded("VMDeath", (), || {
        if let Some(e) = EVENTS.get() {
            e.vm_death(&Jni::from_raw(jni))
        }
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn on_class_file_load_hook(
    jvmti: *mut sys::jvmtiEnv,
    jni: *mut sys::JNIEnv,
    class_being_redefined: sys::jclass,
    _loader: sys::jobject,
    name: *const c_char,
    _protection_domain: sys::jobject,
    class_data_len: sys::jint,
    class_data: *const c_uchar,
    new_class_data_len: *mut sys::jint,
    new_class_data: *mut *mut c_uchar,
) {
    guarded("ClassFileLoadHook", (), || {
        if class_data.is_null() || class_data_len <= 0 || new_class_data.is_null() || new_class_data_len.is_null() {
            return;
        }
        // SAFETY: the JVM passes `class_data_len` readable bytes at `class_data` for this call.
        let bytes = unsafe { std::slice::from_raw_parts(class_data, class_data_len as usize) };
        let Some(events) = EVENTS.get() else { return };
        let name = c_string(name);
        let jvmti = Jvmti(jvmti);
        let redefining = !class_being_redefined.is_null();
        let Some(new_bytes) = events.class_file_load(&Jni::from_raw(jni), name.as_deref(), redefining, bytes) else {
            return;
        };
        match jvmti.allocate_copy(&new_bytes) {
            Ok(mem) => {
                // SAFETY: both out-pointers were checked non-null; the JVM takes ownership of `mem`.
                unsafe {
                    *new_class_data_len = new_bytes.len() as sys::jint;
                    *new_class_data = mem;
                }
            }
            Err(e) => eprintln!("repair: cannot hand new bytes of {} to the JVM: {e}", name.unwrap_or_default()),
        }
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn on_exception(
    _jvmti: *mut sys::jvmtiEnv,
    jni: *mut sys::JNIEnv,
    _thread: sys::jthread,
    _method: sys::jmethodID,
    _location: sys::jlocation,
    exception: sys::jobject,
    catch_method: sys::jmethodID,
    catch_location: sys::jlocation,
) {
    guarded("Exception", (), || {
        let jni = Jni::from_raw(jni);
        let event = ExceptionEvent {
            exception: jni.local(exception),
            catch: (!catch_method.is_null()).then_some((MethodId(catch_method), catch_location)),
        };
        if let Some(e) = EVENTS.get() {
            e.exception(&jni, &event)
        }
    })
}

/// Binds the native methods of the hooks class to the functions below, in the order of
/// [`repair_bytecode::transform::hooks::METHODS`]; they call `hooks` from now on.
pub fn bind_hooks(jni: &Jni<'_>, class: &Local<'_>, hooks: &'static dyn HookCalls) -> Result<(), String> {
    use repair_bytecode::transform::hooks as contract;
    let _ = HOOKS.set(hooks);
    let f = |p: *const ()| p as *mut c_void;
    let table = [
        (contract::FALLBACK, f(hook_fallback as *const ())),
        (contract::ENTER, f(hook_enter as *const ())),
        (contract::ENTER_ARGS, f(hook_enter_args as *const ())),
        (contract::ENTER_PACKED, f(hook_enter_packed as *const ())),
        (contract::ENTER_AT, f(hook_enter_at as *const ())),
        (contract::EXIT, f(hook_exit as *const ())),
        (contract::EXIT_VALUE, f(hook_exit_value as *const ())),
        (contract::EXIT_PRIMITIVE, f(hook_exit_primitive as *const ())),
        (contract::EXIT_AT, f(hook_exit_at as *const ())),
        (contract::THROWN, f(hook_thrown as *const ())),
        (contract::LINE, f(hook_line as *const ())),
        (contract::BREAKER_ENTER, f(hook_breaker_enter as *const ())),
        (contract::BREAKER_EXIT, f(hook_breaker_exit as *const ())),
        (contract::BREAKER_THROWN, f(hook_breaker_thrown as *const ())),
        (contract::SNAPSHOT, f(hook_snapshot as *const ())),
        (contract::CALL_ENTER, f(hook_call_enter as *const ())),
        (contract::CALL_EXIT, f(hook_call_exit as *const ())),
        (contract::RECURSION_ENTER, f(hook_recursion_enter as *const ())),
        (contract::RECURSION_EXIT, f(hook_recursion_exit as *const ())),
    ];
    // A hook of the contract left unbound would throw UnsatisfiedLinkError in the application.
    if table.len() != contract::METHODS.len() || table.iter().any(|(m, _)| !contract::METHODS.contains(m)) {
        return Err(format!(
            "the agent binds {} of the {} hooks of the contract",
            table.len(),
            contract::METHODS.len()
        ));
    }
    let methods: Vec<(&str, &str, *mut c_void)> = table.iter().map(|((n, d), p)| (*n, *d, *p)).collect();
    jni.register_natives(class, &methods)
}

fn with_hooks(f: impl FnOnce(&dyn HookCalls)) {
    if let Some(h) = HOOKS.get() {
        f(*h)
    }
}

thread_local! {
    /// Whether this thread is inside a hook that reads an object (and so runs Java).
    static READING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Calls `f` on the hooks with whether it may read objects: not when this thread is already
/// reading one in an outer hook (see [`HookCalls`]).
fn reading(env: *mut sys::JNIEnv, f: impl FnOnce(&dyn HookCalls, &Jni<'_>, bool)) {
    struct Done;
    impl Drop for Done {
        // Also on a panic, which `guarded` catches: the thread must not stay marked.
        fn drop(&mut self) {
            READING.set(false);
        }
    }
    let jni = Jni::from_raw(env);
    with_hooks(|h| {
        if READING.replace(true) {
            return f(h, &jni, false);
        }
        let _done = Done;
        f(h, &jni, true)
    })
}

/// Calls `f` on the hooks with `obj` to read, or with `None` as [`reading`] says.
fn with_object(env: *mut sys::JNIEnv, obj: sys::jobject, f: impl FnOnce(&dyn HookCalls, &Jni<'_>, Option<&Local<'_>>)) {
    reading(env, |h, jni, may| f(h, jni, may.then(|| jni.local(obj)).as_ref()))
}

extern "C" fn hook_fallback(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, t: sys::jobject) {
    guarded("Hooks.fallback", (), || with_object(env, t, |h, jni, obj| h.fallback(jni, id, obj)))
}

extern "C" fn hook_enter(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) {
    guarded("Hooks.enter", (), || with_hooks(|h| h.enter(&Jni::from_raw(env), id, None)))
}

extern "C" fn hook_enter_args(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, args: sys::jobject) {
    guarded("Hooks.enterArgs", (), || {
        with_object(env, args, |h, jni, obj| h.enter_args(jni, id, obj.map(CallArgs::Boxed).as_ref()))
    })
}

#[allow(clippy::too_many_arguments)]
extern "C" fn hook_enter_packed(
    env: *mut sys::JNIEnv,
    _class: sys::jclass,
    id: sys::jint,
    shape: sys::jint,
    p0: sys::jlong,
    p1: sys::jlong,
    p2: sys::jlong,
    p3: sys::jlong,
    r0: sys::jobject,
    r1: sys::jobject,
    r2: sys::jobject,
    r3: sys::jobject,
) {
    guarded("Hooks.enterPacked", (), || {
        reading(env, |h, jni, may| {
            let packed = may.then(|| Packed::new(shape, [p0, p1, p2, p3], [r0, r1, r2, r3].map(|r| jni.local(r))));
            h.enter_args(jni, id, packed.flatten().as_ref().map(CallArgs::Packed).as_ref())
        })
    })
}

extern "C" fn hook_enter_at(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, nanos: sys::jlong) {
    guarded("Hooks.enterAt", (), || with_hooks(|h| h.enter(&Jni::from_raw(env), id, Some(nanos))))
}

extern "C" fn hook_exit(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) {
    guarded("Hooks.exit", (), || with_hooks(|h| h.exit(&Jni::from_raw(env), id, None)))
}

extern "C" fn hook_exit_value(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, value: sys::jobject) {
    guarded("Hooks.exitValue", (), || {
        with_object(env, value, |h, jni, obj| h.exit_value(jni, id, obj.map(Captured::Object)))
    })
}

extern "C" fn hook_exit_primitive(
    env: *mut sys::JNIEnv,
    _class: sys::jclass,
    value: sys::jlong,
    id: sys::jint,
    code: sys::jint,
) {
    guarded("Hooks.exitPrimitive", (), || {
        reading(env, |h, jni, may| {
            let code = u8::try_from(code).ok().and_then(repair_bytecode::transform::hooks::packed::Code::from_u8);
            let value = code.and_then(|c| Primitive::from_raw(c, value)).filter(|_| may);
            h.exit_value(jni, id, value.map(Captured::Primitive))
        })
    })
}

extern "C" fn hook_exit_at(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, nanos: sys::jlong) {
    guarded("Hooks.exitAt", (), || with_hooks(|h| h.exit(&Jni::from_raw(env), id, Some(nanos))))
}

extern "C" fn hook_thrown(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, t: sys::jobject) {
    guarded("Hooks.thrown", (), || with_object(env, t, |h, jni, obj| h.thrown(jni, id, obj)))
}

extern "C" fn hook_snapshot(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, locals: sys::jobject) {
    guarded("Hooks.snapshot", (), || with_object(env, locals, |h, jni, obj| h.snapshot(jni, id, obj)))
}

extern "C" fn hook_call_enter(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, site: sys::jint) {
    guarded("Hooks.callEnter", (), || with_hooks(|h| h.call_enter(id, site)))
}

extern "C" fn hook_call_exit(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, site: sys::jint) {
    guarded("Hooks.callExit", (), || with_hooks(|h| h.call_exit(id, site)))
}

extern "C" fn hook_line(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, line: sys::jint) {
    guarded("Hooks.line", (), || with_hooks(|h| h.line(id, line)))
}

extern "C" fn hook_breaker_enter(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) -> sys::jboolean {
    // On an internal error the body runs: a breaker that fails must not block calls.
    guarded("Hooks.breakerEnter", 1, || u8::from(HOOKS.get().is_none_or(|h| h.breaker_enter(id))))
}

extern "C" fn hook_breaker_exit(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) {
    guarded("Hooks.breakerExit", (), || with_hooks(|h| h.breaker_exit(id)))
}

extern "C" fn hook_breaker_thrown(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, t: sys::jobject) {
    guarded("Hooks.breakerThrown", (), || with_object(env, t, |h, jni, obj| h.breaker_thrown(jni, id, obj)))
}

extern "C" fn hook_recursion_enter(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) -> sys::jboolean {
    // On an internal error the body runs, as the method would without the guard.
    guarded("Hooks.recursionEnter", 1, || u8::from(HOOKS.get().is_none_or(|h| h.recursion_enter(id))))
}

extern "C" fn hook_recursion_exit(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) {
    guarded("Hooks.recursionExit", (), || with_hooks(|h| h.recursion_exit(id)))
}
