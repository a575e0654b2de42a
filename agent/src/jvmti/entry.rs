//! The agent's `extern "C"` surface: `Agent_OnLoad`, `Agent_OnAttach`, the JVMTI event callbacks
//! and the native methods of `repair/rt/Hooks`. Each turns raw pointers into the safe handles of
//! this module and runs the agent's code under `catch_unwind`: a panic never reaches the JVM.

use std::ffi::{c_char, c_uchar, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{c_string, sys, JavaVm, Jni, Jvmti, JvmtiError, Local, MethodId, Reserved};
use crate::agent::{self, ExceptionEvent, LoadMode};
use crate::{breakers, hooks};

/// Runs `f`; a panic is logged and replaced by `fallback`.
fn guarded<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            eprintln!("repair: internal error in {what}: {why}; the agent stays passive for this event");
            fallback
        }
    }
}

/// Called by the JVM for `-agentpath:/path/librepair.so=OPTIONS` before the VM starts.
#[no_mangle]
pub extern "C" fn Agent_OnLoad(vm: *mut sys::JavaVM, options: *mut c_char, _reserved: Reserved) -> sys::jint {
    guarded("Agent_OnLoad", sys::JNI_ERR, || {
        agent::load(JavaVm::from_raw(vm), &c_string(options).unwrap_or_default(), LoadMode::Startup)
    })
}

/// Called by the JVM when the agent is loaded into a running VM (attach, `jcmd JVMTI.agent_load`).
#[no_mangle]
pub extern "C" fn Agent_OnAttach(vm: *mut sys::JavaVM, options: *mut c_char, _reserved: Reserved) -> sys::jint {
    guarded("Agent_OnAttach", sys::JNI_ERR, || {
        agent::load(JavaVm::from_raw(vm), &c_string(options).unwrap_or_default(), LoadMode::Attach)
    })
}

/// Installs the agent's event callbacks (events still need enabling one by one).
pub fn install_callbacks(jvmti: Jvmti) -> Result<(), JvmtiError> {
    let callbacks = sys::jvmtiEventCallbacks {
        VMInit: Some(on_vm_init),
        VMDeath: Some(on_vm_death),
        ClassFileLoadHook: Some(on_class_file_load_hook),
        Exception: Some(on_exception),
        ..Default::default()
    };
    jvmti.set_callbacks(&callbacks)
}

unsafe extern "C" fn on_vm_init(jvmti: *mut sys::jvmtiEnv, jni: *mut sys::JNIEnv, _thread: sys::jthread) {
    guarded("VMInit", (), || agent::on_vm_init(Jvmti(jvmti), &Jni::from_raw(jni)))
}

unsafe extern "C" fn on_vm_death(jvmti: *mut sys::jvmtiEnv, jni: *mut sys::JNIEnv) {
    guarded("VMDeath", (), || agent::on_vm_death(Jvmti(jvmti), &Jni::from_raw(jni)))
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
        let name = c_string(name);
        let jvmti = Jvmti(jvmti);
        let Some(new_bytes) = agent::on_class_file_load(
            jvmti,
            &Jni::from_raw(jni),
            name.as_deref(),
            !class_being_redefined.is_null(),
            bytes,
        ) else {
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
    jvmti: *mut sys::jvmtiEnv,
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
        agent::on_exception(Jvmti(jvmti), &jni, &event)
    })
}

/// Binds the native methods of the hooks class to the functions below, in the order of
/// [`repair_bytecode::transform::hooks::METHODS`].
pub fn bind_hooks(jni: &Jni<'_>, class: &Local<'_>) -> Result<(), String> {
    use repair_bytecode::transform::hooks as contract;
    let f = |p: *const ()| p as *mut c_void;
    let table = [
        (contract::FALLBACK, f(hook_fallback as *const ())),
        (contract::ENTER, f(hook_enter as *const ())),
        (contract::ENTER_ARGS, f(hook_enter_args as *const ())),
        (contract::ENTER_AT, f(hook_enter_at as *const ())),
        (contract::EXIT, f(hook_exit as *const ())),
        (contract::EXIT_VALUE, f(hook_exit_value as *const ())),
        (contract::EXIT_AT, f(hook_exit_at as *const ())),
        (contract::THROWN, f(hook_thrown as *const ())),
        (contract::LINE, f(hook_line as *const ())),
        (contract::BREAKER_ENTER, f(hook_breaker_enter as *const ())),
        (contract::BREAKER_EXIT, f(hook_breaker_exit as *const ())),
        (contract::BREAKER_THROWN, f(hook_breaker_thrown as *const ())),
    ];
    let methods: Vec<(&str, &str, *mut c_void)> = table.iter().map(|((n, d), p)| (*n, *d, *p)).collect();
    jni.register_natives(class, &methods)
}

extern "C" fn hook_fallback(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, t: sys::jobject) {
    guarded("Hooks.fallback", (), || {
        let jni = Jni::from_raw(env);
        hooks::fallback(&jni, id, &jni.local(t))
    })
}

extern "C" fn hook_enter(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) {
    guarded("Hooks.enter", (), || hooks::enter(id, None))
}

extern "C" fn hook_enter_args(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, args: sys::jobject) {
    guarded("Hooks.enterArgs", (), || {
        let jni = Jni::from_raw(env);
        hooks::enter_args(&jni, id, &jni.local(args))
    })
}

extern "C" fn hook_enter_at(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, nanos: sys::jlong) {
    guarded("Hooks.enterAt", (), || hooks::enter(id, Some(nanos)))
}

extern "C" fn hook_exit(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) {
    guarded("Hooks.exit", (), || hooks::exit(id, None))
}

extern "C" fn hook_exit_value(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, value: sys::jobject) {
    guarded("Hooks.exitValue", (), || {
        let jni = Jni::from_raw(env);
        hooks::exit_value(&jni, id, &jni.local(value))
    })
}

extern "C" fn hook_exit_at(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, nanos: sys::jlong) {
    guarded("Hooks.exitAt", (), || hooks::exit(id, Some(nanos)))
}

extern "C" fn hook_thrown(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, t: sys::jobject) {
    guarded("Hooks.thrown", (), || {
        let jni = Jni::from_raw(env);
        hooks::thrown(&jni, id, &jni.local(t))
    })
}

extern "C" fn hook_line(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, line: sys::jint) {
    guarded("Hooks.line", (), || hooks::line(id, line))
}

extern "C" fn hook_breaker_enter(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) -> sys::jboolean {
    // On an internal error the body runs: a breaker that fails must not block calls.
    guarded("Hooks.breakerEnter", 1, || u8::from(breakers::enter(id)))
}

extern "C" fn hook_breaker_exit(_env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint) {
    guarded("Hooks.breakerExit", (), || breakers::exit(id))
}

extern "C" fn hook_breaker_thrown(env: *mut sys::JNIEnv, _class: sys::jclass, id: sys::jint, t: sys::jobject) {
    guarded("Hooks.breakerThrown", (), || {
        let jni = Jni::from_raw(env);
        breakers::thrown(id, || jni.class_name_of_object(&jni.local(t)))
    })
}
