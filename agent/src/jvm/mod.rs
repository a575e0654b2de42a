//! The one safe layer over JVMTI and JNI. Every `unsafe` block of the agent lives in this module.
//!
//! Handles: [`Jvmti`] (an environment, usable from any attached thread), [`Jni`] (the JNI
//! environment of the current thread, valid only on it), [`JavaVm`], [`Local`] (a local reference
//! valid while the `Jni` it came from is), [`Weak`] (a weak global reference) and [`MethodId`]. The exported entry points
//! and event callbacks are in [`ffi`]; they catch every panic before it reaches the JVM.

mod captured;
pub mod ffi;
mod jni;
mod sys;

use std::ffi::{c_char, c_uchar, CStr};
use std::fmt;
use std::ptr;

pub use captured::{CallArgs, Captured, Packed, Primitive, MAX_ARGS};
pub use jni::{JavaVm, Jni, Local, PlainValue, TraceElement, ValueHint, Weak};

/// The JVM's `JavaVM` as `Agent_OnLoad` receives it, for the exports in `lib.rs`.
pub type RawJavaVm = sys::JavaVM;

/// The JVMTI version the agent asks for: 11 exists in every JDK since 11. A newer number (the
/// header's own `JVMTI_VERSION`) makes older JVMs refuse the environment, so never use that.
pub const REQUESTED_VERSION: i32 = sys::JVMTI_VERSION_11 as i32;

/// The internal name in a class signature: `Lcom/shop/Price;` → `com/shop/Price`; `None` for
/// arrays and primitives.
pub fn internal_name(signature: &str) -> Option<&str> {
    signature.strip_prefix('L')?.strip_suffix(';')
}

/// The agent's JVMTI environment, kept from the first `GetEnv`: what the JNI layer needs of JVMTI
/// (class names without running Java code) reaches it here.
static ENV: std::sync::OnceLock<Jvmti> = std::sync::OnceLock::new();

fn env() -> Option<Jvmti> {
    ENV.get().copied()
}

/// A JVMTI error: the function that failed and the error code, named and explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JvmtiError {
    pub function: &'static str,
    pub code: u32,
}

impl JvmtiError {
    /// The constant's name, e.g. `JVMTI_ERROR_UNSUPPORTED_REDEFINITION_METHOD_ADDED`.
    pub fn name(&self) -> &'static str {
        error_text(self.code).0
    }
    /// What the error means for the user.
    pub fn meaning(&self) -> &'static str {
        error_text(self.code).1
    }
}

impl fmt::Display for JvmtiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {} ({}): {}", self.function, self.name(), self.code, self.meaning())
    }
}

impl std::error::Error for JvmtiError {}

fn error_text(code: u32) -> (&'static str, &'static str) {
    match code {
        sys::jvmtiError_JVMTI_ERROR_NONE => ("JVMTI_ERROR_NONE", "no error"),
        sys::jvmtiError_JVMTI_ERROR_INVALID_CLASS => ("JVMTI_ERROR_INVALID_CLASS", "the class is not a loaded class"),
        sys::jvmtiError_JVMTI_ERROR_INVALID_METHODID => ("JVMTI_ERROR_INVALID_METHODID", "the method id is not valid"),
        sys::jvmtiError_JVMTI_ERROR_INVALID_THREAD => ("JVMTI_ERROR_INVALID_THREAD", "the thread is not a thread"),
        sys::jvmtiError_JVMTI_ERROR_THREAD_NOT_ALIVE => ("JVMTI_ERROR_THREAD_NOT_ALIVE", "the thread is not alive"),
        sys::jvmtiError_JVMTI_ERROR_INVALID_CLASS_FORMAT => {
            ("JVMTI_ERROR_INVALID_CLASS_FORMAT", "the new class bytes are malformed")
        }
        sys::jvmtiError_JVMTI_ERROR_CIRCULAR_CLASS_DEFINITION => {
            ("JVMTI_ERROR_CIRCULAR_CLASS_DEFINITION", "the new class would be its own superclass")
        }
        sys::jvmtiError_JVMTI_ERROR_FAILS_VERIFICATION => {
            ("JVMTI_ERROR_FAILS_VERIFICATION", "the new class bytes fail the JVM's bytecode verifier")
        }
        sys::jvmtiError_JVMTI_ERROR_UNSUPPORTED_REDEFINITION_METHOD_ADDED => {
            ("JVMTI_ERROR_UNSUPPORTED_REDEFINITION_METHOD_ADDED", "the patch adds a method")
        }
        sys::jvmtiError_JVMTI_ERROR_UNSUPPORTED_REDEFINITION_SCHEMA_CHANGED => {
            ("JVMTI_ERROR_UNSUPPORTED_REDEFINITION_SCHEMA_CHANGED", "the patch adds, removes or changes a field")
        }
        sys::jvmtiError_JVMTI_ERROR_INVALID_TYPESTATE => {
            ("JVMTI_ERROR_INVALID_TYPESTATE", "the thread state was modified and is now inconsistent")
        }
        sys::jvmtiError_JVMTI_ERROR_UNSUPPORTED_REDEFINITION_HIERARCHY_CHANGED => (
            "JVMTI_ERROR_UNSUPPORTED_REDEFINITION_HIERARCHY_CHANGED",
            "the patch changes the superclass or the implemented interfaces",
        ),
        sys::jvmtiError_JVMTI_ERROR_UNSUPPORTED_REDEFINITION_METHOD_DELETED => {
            ("JVMTI_ERROR_UNSUPPORTED_REDEFINITION_METHOD_DELETED", "the patch removes a method")
        }
        sys::jvmtiError_JVMTI_ERROR_UNSUPPORTED_VERSION => {
            ("JVMTI_ERROR_UNSUPPORTED_VERSION", "the new class file has a version this JVM does not support")
        }
        sys::jvmtiError_JVMTI_ERROR_NAMES_DONT_MATCH => {
            ("JVMTI_ERROR_NAMES_DONT_MATCH", "the new class bytes define a class of another name")
        }
        sys::jvmtiError_JVMTI_ERROR_UNSUPPORTED_REDEFINITION_CLASS_MODIFIERS_CHANGED => {
            ("JVMTI_ERROR_UNSUPPORTED_REDEFINITION_CLASS_MODIFIERS_CHANGED", "the patch changes the class's modifiers")
        }
        sys::jvmtiError_JVMTI_ERROR_UNSUPPORTED_REDEFINITION_METHOD_MODIFIERS_CHANGED => {
            ("JVMTI_ERROR_UNSUPPORTED_REDEFINITION_METHOD_MODIFIERS_CHANGED", "the patch changes a method's modifiers")
        }
        sys::jvmtiError_JVMTI_ERROR_UNSUPPORTED_REDEFINITION_CLASS_ATTRIBUTE_CHANGED => (
            "JVMTI_ERROR_UNSUPPORTED_REDEFINITION_CLASS_ATTRIBUTE_CHANGED",
            "the patch changes a class attribute the JVM cannot redefine (nest, record or permitted subclasses)",
        ),
        sys::jvmtiError_JVMTI_ERROR_UNMODIFIABLE_CLASS => {
            ("JVMTI_ERROR_UNMODIFIABLE_CLASS", "the class cannot be modified (a primitive, array or hidden class)")
        }
        sys::jvmtiError_JVMTI_ERROR_NOT_AVAILABLE => {
            ("JVMTI_ERROR_NOT_AVAILABLE", "the JVM cannot provide this capability in the current phase")
        }
        sys::jvmtiError_JVMTI_ERROR_MUST_POSSESS_CAPABILITY => {
            ("JVMTI_ERROR_MUST_POSSESS_CAPABILITY", "the agent does not hold the capability this needs")
        }
        sys::jvmtiError_JVMTI_ERROR_NULL_POINTER => ("JVMTI_ERROR_NULL_POINTER", "a pointer argument was null"),
        sys::jvmtiError_JVMTI_ERROR_ABSENT_INFORMATION => {
            ("JVMTI_ERROR_ABSENT_INFORMATION", "the class file has no such information (compiled without -g?)")
        }
        sys::jvmtiError_JVMTI_ERROR_ILLEGAL_ARGUMENT => ("JVMTI_ERROR_ILLEGAL_ARGUMENT", "an argument is invalid"),
        sys::jvmtiError_JVMTI_ERROR_NATIVE_METHOD => ("JVMTI_ERROR_NATIVE_METHOD", "the method is native"),
        sys::jvmtiError_JVMTI_ERROR_OUT_OF_MEMORY => ("JVMTI_ERROR_OUT_OF_MEMORY", "the JVM ran out of memory"),
        sys::jvmtiError_JVMTI_ERROR_WRONG_PHASE => {
            ("JVMTI_ERROR_WRONG_PHASE", "the function is not available in the JVM's current phase")
        }
        sys::jvmtiError_JVMTI_ERROR_INTERNAL => ("JVMTI_ERROR_INTERNAL", "an internal error of the JVM"),
        sys::jvmtiError_JVMTI_ERROR_UNATTACHED_THREAD => {
            ("JVMTI_ERROR_UNATTACHED_THREAD", "the calling thread is not attached to the JVM")
        }
        sys::jvmtiError_JVMTI_ERROR_INVALID_ENVIRONMENT => {
            ("JVMTI_ERROR_INVALID_ENVIRONMENT", "the JVMTI environment is no longer valid")
        }
        _ => ("JVMTI_ERROR_(other)", "an error this agent does not know"),
    }
}

/// Calls a function of the JVMTI function table; a missing entry is reported as an internal error.
macro_rules! jvmti_call {
    ($env:expr, $f:ident $(, $arg:expr)* $(,)?) => {{
        let env: *mut sys::jvmtiEnv = $env;
        // SAFETY: `env` is a live JVMTI environment obtained from GetEnv; its function table is
        // valid for the life of the environment and the arguments follow the JVMTI contract.
        match unsafe { (**env).$f } {
            Some(f) => {
                let code = unsafe { f(env $(, $arg)*) };
                if code == sys::jvmtiError_JVMTI_ERROR_NONE {
                    Ok(())
                } else {
                    Err(JvmtiError { function: stringify!($f), code })
                }
            }
            None => Err(JvmtiError { function: stringify!($f), code: sys::jvmtiError_JVMTI_ERROR_INTERNAL }),
        }
    }};
}

/// A capability the agent may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    RedefineClasses,
    RetransformClasses,
    ExceptionEvents,
    LineNumbers,
    SourceFileName,
    /// `GetBytecodes`: what a method runs now (to show an observation leaves no trace).
    Bytecodes,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::RedefineClasses,
        Capability::RetransformClasses,
        Capability::ExceptionEvents,
        Capability::LineNumbers,
        Capability::SourceFileName,
        Capability::Bytecodes,
    ];

    /// The JVMTI field name, e.g. `can_retransform_classes`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::RedefineClasses => "can_redefine_classes",
            Capability::RetransformClasses => "can_retransform_classes",
            Capability::ExceptionEvents => "can_generate_exception_events",
            Capability::LineNumbers => "can_get_line_numbers",
            Capability::SourceFileName => "can_get_source_file_name",
            Capability::Bytecodes => "can_get_bytecodes",
        }
    }

    fn set(self, caps: &mut sys::jvmtiCapabilities) {
        match self {
            Capability::RedefineClasses => caps.set_can_redefine_classes(1),
            Capability::RetransformClasses => caps.set_can_retransform_classes(1),
            Capability::ExceptionEvents => caps.set_can_generate_exception_events(1),
            Capability::LineNumbers => caps.set_can_get_line_numbers(1),
            Capability::SourceFileName => caps.set_can_get_source_file_name(1),
            Capability::Bytecodes => caps.set_can_get_bytecodes(1),
        }
    }
}

/// An event the agent handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    VmInit,
    VmDeath,
    ClassFileLoadHook,
    Exception,
}

impl Event {
    fn raw(self) -> sys::jvmtiEvent {
        match self {
            Event::VmInit => sys::jvmtiEvent_JVMTI_EVENT_VM_INIT,
            Event::VmDeath => sys::jvmtiEvent_JVMTI_EVENT_VM_DEATH,
            Event::ClassFileLoadHook => sys::jvmtiEvent_JVMTI_EVENT_CLASS_FILE_LOAD_HOOK,
            Event::Exception => sys::jvmtiEvent_JVMTI_EVENT_EXCEPTION,
        }
    }
}

/// A method id: valid for as long as its class is loaded, on any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MethodId(sys::jmethodID);

// SAFETY: a jmethodID is a JVM-global, immutable handle, usable from any attached thread.
unsafe impl Send for MethodId {}
// SAFETY: as above; it is never dereferenced by Rust.
unsafe impl Sync for MethodId {}

/// A field of a class (`jfieldID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldId(pub(crate) sys::jfieldID);

// SAFETY: a jfieldID is a JVM-global, immutable handle, usable from any attached thread.
unsafe impl Send for FieldId {}
// SAFETY: as above; it is never dereferenced by Rust.
unsafe impl Sync for FieldId {}

/// One stack frame: the method and the bytecode index (`-1` for a native method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub method: MethodId,
    pub bci: i64,
}

/// A JVMTI environment. Usable from any thread attached to the JVM.
#[derive(Debug, Clone, Copy)]
pub struct Jvmti(*mut sys::jvmtiEnv);

// SAFETY: a JVMTI environment may be used from any thread attached to the JVM (JVMTI spec,
// "Environments"); the functions called through it are thread-safe.
unsafe impl Send for Jvmti {}
// SAFETY: as above.
unsafe impl Sync for Jvmti {}

impl Jvmti {
    /// JVMTI's `GetVersionNumber`.
    pub fn version(self) -> Result<i32, JvmtiError> {
        let mut v = 0;
        jvmti_call!(self.0, GetVersionNumber, &mut v)?;
        Ok(v)
    }

    /// Asks for one capability.
    pub fn add_capability(self, cap: Capability) -> Result<(), JvmtiError> {
        let mut caps = sys::jvmtiCapabilities::default();
        cap.set(&mut caps);
        jvmti_call!(self.0, AddCapabilities, &caps)
    }

    /// Enables or disables an event for all threads.
    pub fn set_event(self, event: Event, enabled: bool) -> Result<(), JvmtiError> {
        let mode = if enabled { sys::jvmtiEventMode_JVMTI_ENABLE } else { sys::jvmtiEventMode_JVMTI_DISABLE };
        jvmti_call!(self.0, SetEventNotificationMode, mode, event.raw(), ptr::null_mut())
    }

    /// Name and descriptor of a method.
    pub fn method_name(self, m: MethodId) -> Result<(String, String), JvmtiError> {
        let (mut name, mut sig) = (ptr::null_mut(), ptr::null_mut());
        jvmti_call!(self.0, GetMethodName, m.0, &mut name, &mut sig, ptr::null_mut())?;
        Ok((self.take_string(name), self.take_string(sig)))
    }

    /// The access flags of a method (`ACC_PUBLIC`, `ACC_STATIC`, ...).
    pub fn method_modifiers(self, m: MethodId) -> Result<i32, JvmtiError> {
        let mut modifiers = 0;
        jvmti_call!(self.0, GetMethodModifiers, m.0, &mut modifiers)?;
        Ok(modifiers)
    }

    /// The class declaring `m`, as a local reference of `jni`.
    pub fn method_class<'a>(self, jni: &Jni<'a>, m: MethodId) -> Result<Local<'a>, JvmtiError> {
        let mut class = ptr::null_mut();
        jvmti_call!(self.0, GetMethodDeclaringClass, m.0, &mut class)?;
        Ok(jni.local(class))
    }

    /// The JVM signature of a class, e.g. `Lcom/shop/PriceService;`.
    pub fn class_signature(self, class: &Local<'_>) -> Result<String, JvmtiError> {
        let mut sig = ptr::null_mut();
        jvmti_call!(self.0, GetClassSignature, class.raw(), &mut sig, ptr::null_mut())?;
        Ok(self.take_string(sig))
    }

    /// A system property of the VM (`sun.java.command`...); usable from `Agent_OnLoad` on.
    pub fn system_property(self, name: &str) -> Result<String, JvmtiError> {
        let key = std::ffi::CString::new(name).map_err(|_| JvmtiError {
            function: "GetSystemProperty",
            code: sys::jvmtiError_JVMTI_ERROR_ILLEGAL_ARGUMENT,
        })?;
        let mut value = ptr::null_mut();
        jvmti_call!(self.0, GetSystemProperty, key.as_ptr(), &mut value)?;
        Ok(self.take_string(value))
    }

    /// The line-number table of a method as `(start bci, line)` (needs `can_get_line_numbers`).
    pub fn line_numbers(self, m: MethodId) -> Result<Vec<(i64, i32)>, JvmtiError> {
        let (mut count, mut table) = (0, ptr::null_mut::<sys::jvmtiLineNumberEntry>());
        jvmti_call!(self.0, GetLineNumberTable, m.0, &mut count, &mut table)?;
        let entries = if table.is_null() || count <= 0 {
            Vec::new()
        } else {
            // SAFETY: JVMTI returned `count` entries at `table`, allocated by it.
            unsafe { std::slice::from_raw_parts(table, count as usize) }
                .iter()
                .map(|e| (e.start_location, e.line_number))
                .collect()
        };
        self.deallocate(table.cast());
        Ok(entries)
    }

    /// Up to `max` frames of the current thread's stack, innermost first.
    pub fn current_stack(self, max: usize) -> Result<Vec<Frame>, JvmtiError> {
        let mut frames = vec![sys::jvmtiFrameInfo::default(); max];
        let mut count = 0;
        jvmti_call!(self.0, GetStackTrace, ptr::null_mut(), 0, max as i32, frames.as_mut_ptr(), &mut count)?;
        frames.truncate(count.max(0) as usize);
        Ok(frames.into_iter().map(|f| Frame { method: MethodId(f.method), bci: f.location }).collect())
    }

    /// The name of the current thread.
    pub fn current_thread_name(self, jni: &Jni<'_>) -> Result<String, JvmtiError> {
        let mut info = sys::jvmtiThreadInfo::default();
        jvmti_call!(self.0, GetThreadInfo, ptr::null_mut(), &mut info)?;
        jni.delete_local(info.thread_group);
        jni.delete_local(info.context_class_loader);
        Ok(self.take_string(info.name))
    }

    /// Every loaded class, as local references of `jni` (use inside [`Jni::with_local_frame`]).
    pub fn loaded_classes<'a>(self, jni: &Jni<'a>) -> Result<Vec<Local<'a>>, JvmtiError> {
        let (mut count, mut classes) = (0, ptr::null_mut::<sys::jclass>());
        jvmti_call!(self.0, GetLoadedClasses, &mut count, &mut classes)?;
        let list = if classes.is_null() || count <= 0 {
            Vec::new()
        } else {
            // SAFETY: JVMTI returned `count` class references at `classes`.
            unsafe { std::slice::from_raw_parts(classes, count as usize) }.iter().map(|&c| jni.local(c)).collect()
        };
        self.deallocate(classes.cast());
        Ok(list)
    }

    /// The methods a class declares.
    pub fn class_methods(self, class: &Local<'_>) -> Result<Vec<MethodId>, JvmtiError> {
        let (mut count, mut methods) = (0, ptr::null_mut::<sys::jmethodID>());
        jvmti_call!(self.0, GetClassMethods, class.raw(), &mut count, &mut methods)?;
        let ids = if methods.is_null() || count <= 0 {
            Vec::new()
        } else {
            // SAFETY: JVMTI returned `count` method ids at `methods`.
            unsafe { std::slice::from_raw_parts(methods, count as usize) }.iter().map(|&m| MethodId(m)).collect()
        };
        self.deallocate(methods.cast());
        Ok(ids)
    }

    /// The bytecodes `m` runs now (after any redefinition), as a class file would hold them.
    pub fn bytecodes(self, m: MethodId) -> Result<Vec<u8>, JvmtiError> {
        let (mut count, mut code) = (0, ptr::null_mut::<c_uchar>());
        jvmti_call!(self.0, GetBytecodes, m.0, &mut count, &mut code)?;
        let bytes = if code.is_null() || count <= 0 {
            Vec::new()
        } else {
            // SAFETY: JVMTI returned `count` bytes at `code`.
            unsafe { std::slice::from_raw_parts(code, count as usize) }.to_vec()
        };
        self.deallocate(code);
        Ok(bytes)
    }

    /// The access flags of a class (`ACC_INTERFACE`, `ACC_ABSTRACT`, ...).
    pub fn class_modifiers(self, class: &Local<'_>) -> Result<i32, JvmtiError> {
        let mut modifiers = 0;
        jvmti_call!(self.0, GetClassModifiers, class.raw(), &mut modifiers)?;
        Ok(modifiers)
    }

    /// The fields a class declares (not inherited ones): id, name, type descriptor, modifiers.
    pub fn class_fields(self, class: &Local<'_>) -> Result<Vec<(FieldId, String, String, i32)>, JvmtiError> {
        let (mut count, mut fields) = (0, ptr::null_mut::<sys::jfieldID>());
        jvmti_call!(self.0, GetClassFields, class.raw(), &mut count, &mut fields)?;
        let ids: Vec<sys::jfieldID> = if fields.is_null() || count <= 0 {
            Vec::new()
        } else {
            // SAFETY: JVMTI returned `count` field ids at `fields`.
            unsafe { std::slice::from_raw_parts(fields, count as usize) }.to_vec()
        };
        self.deallocate(fields.cast());
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let (mut name, mut sig) = (ptr::null_mut(), ptr::null_mut());
            jvmti_call!(self.0, GetFieldName, class.raw(), id, &mut name, &mut sig, ptr::null_mut())?;
            let mut modifiers = 0;
            jvmti_call!(self.0, GetFieldModifiers, class.raw(), id, &mut modifiers)?;
            out.push((FieldId(id), self.take_string(name), self.take_string(sig), modifiers));
        }
        Ok(out)
    }

    /// The class's defining loader, as a local reference of `jni`; null for the boot loader.
    pub fn class_loader<'a>(self, jni: &Jni<'a>, class: &Local<'_>) -> Result<Local<'a>, JvmtiError> {
        let mut loader = ptr::null_mut();
        jvmti_call!(self.0, GetClassLoader, class.raw(), &mut loader)?;
        Ok(jni.local(loader))
    }

    /// The object's identity hash code (as `System.identityHashCode`).
    pub fn object_hash(self, object: &Local<'_>) -> Result<i32, JvmtiError> {
        let mut hash = 0;
        jvmti_call!(self.0, GetObjectHashCode, object.raw(), &mut hash)?;
        Ok(hash)
    }

    /// Whether the class is in the error state (its static initializer failed): such a class
    /// cannot be retransformed, and one in a batch fails the whole `RetransformClasses` call.
    pub fn is_in_error_state(self, class: &Local<'_>) -> Result<bool, JvmtiError> {
        let mut status = 0;
        jvmti_call!(self.0, GetClassStatus, class.raw(), &mut status)?;
        Ok(status as u32 & sys::JVMTI_CLASS_STATUS_ERROR != 0)
    }

    /// Whether `RedefineClasses`/`RetransformClasses` may touch the class.
    pub fn is_modifiable(self, class: &Local<'_>) -> Result<bool, JvmtiError> {
        let mut modifiable = 0;
        jvmti_call!(self.0, IsModifiableClass, class.raw(), &mut modifiable)?;
        Ok(modifiable != 0)
    }

    /// One `RetransformClasses` call for all `classes`: the ClassFileLoadHook runs for each on
    /// this thread. Atomic: if one class is refused, none changes.
    pub fn retransform(self, classes: &[Local<'_>]) -> Result<(), JvmtiError> {
        let raw: Vec<sys::jclass> = classes.iter().map(Local::raw).collect();
        jvmti_call!(self.0, RetransformClasses, raw.len() as i32, raw.as_ptr())
    }

    /// Copies `bytes` into memory allocated by JVMTI (what ClassFileLoadHook must return).
    fn allocate_copy(self, bytes: &[u8]) -> Result<*mut c_uchar, JvmtiError> {
        let mut mem = ptr::null_mut();
        jvmti_call!(self.0, Allocate, bytes.len() as i64, &mut mem)?;
        // SAFETY: Allocate returned `bytes.len()` writable bytes at `mem`.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), mem, bytes.len()) };
        Ok(mem)
    }

    fn set_callbacks(self, callbacks: &sys::jvmtiEventCallbacks) -> Result<(), JvmtiError> {
        let size = std::mem::size_of::<sys::jvmtiEventCallbacks>() as i32;
        jvmti_call!(self.0, SetEventCallbacks, callbacks, size)
    }

    /// Converts a JVMTI-allocated modified-UTF-8 string and frees it.
    fn take_string(self, s: *mut c_char) -> String {
        if s.is_null() {
            return String::new();
        }
        // SAFETY: JVMTI returned a NUL-terminated string it allocated.
        let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
        self.deallocate(s.cast());
        text
    }

    fn deallocate(self, mem: *mut c_uchar) {
        if !mem.is_null() {
            // Deallocate of memory JVMTI allocated cannot fail in a way the agent could handle.
            let _ = jvmti_call!(self.0, Deallocate, mem);
        }
    }
}

/// Turns a C string the JVM passed in (options, class names) into a Rust string.
fn c_string(s: *const c_char) -> Option<String> {
    if s.is_null() {
        None
    } else {
        // SAFETY: the JVM passes NUL-terminated strings that live for the duration of the call.
        Some(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
    }
}
