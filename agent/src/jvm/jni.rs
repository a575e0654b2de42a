//! JNI handles: the VM, the per-thread environment, local and global references.

use std::ffi::{c_void, CStr, CString};
use std::marker::PhantomData;
use std::ptr;

use super::{sys, Jvmti, REQUESTED_VERSION};

/// Calls a function of the JNI function table. A missing entry (never the case in a conforming
/// JVM) yields `None`.
macro_rules! jni_call {
    ($env:expr, $f:ident $(, $arg:expr)* $(,)?) => {{
        let env: *mut sys::JNIEnv = $env;
        // SAFETY: `env` is the JNI environment of the current thread (a `Jni` is only built from
        // the env the JVM handed to this thread); arguments follow the JNI contract.
        unsafe { (**env).$f.map(|f| f(env $(, $arg)*)) }
    }};
}

/// The Java VM. Usable from any thread.
#[derive(Debug, Clone, Copy)]
pub struct JavaVm(*mut sys::JavaVM);

// SAFETY: the JavaVM pointer is process-global and its invocation functions are thread-safe.
unsafe impl Send for JavaVm {}
// SAFETY: as above.
unsafe impl Sync for JavaVm {}

impl JavaVm {
    pub(super) fn from_raw(vm: *mut sys::JavaVM) -> JavaVm {
        JavaVm(vm)
    }

    /// A JVMTI environment of [`REQUESTED_VERSION`]; `Err` carries the JNI error code.
    pub fn jvmti(self) -> Result<Jvmti, i32> {
        let mut env: *mut c_void = ptr::null_mut();
        // SAFETY: `self.0` is the VM the JVM passed to Agent_OnLoad/OnAttach.
        let rc = unsafe { (**self.0).GetEnv.map(|f| f(self.0, &mut env, REQUESTED_VERSION)) };
        match rc {
            Some(0) if !env.is_null() => {
                let jvmti = Jvmti(env.cast());
                let _ = super::ENV.set(jvmti);
                Ok(jvmti)
            }
            Some(rc) => Err(rc),
            None => Err(sys::JNI_ERR),
        }
    }

    /// Runs `f` with the current thread's JNI environment, or returns `None` when the thread is
    /// not attached to the JVM.
    pub fn with_env<R>(self, f: impl FnOnce(&Jni<'_>) -> R) -> Option<R> {
        let env = self.current_env()?;
        Some(f(&Jni { env, _thread: PhantomData }))
    }

    /// Runs `f` with the current thread's JNI environment, attaching the thread as a daemon for
    /// the call when it is not attached, and detaching it after. An agent thread must not stay
    /// attached while it waits: at exit HotSpot waits up to 300 ms for attached threads that are
    /// in native code (`VM_Exit::wait_for_threads_in_native_to_block`). `Err` is the JNI error
    /// of a failed attach (e.g. while the JVM is exiting).
    pub fn attached<R>(self, name: &str, f: impl FnOnce(&Jni<'_>) -> R) -> Result<R, i32> {
        if let Some(env) = self.current_env() {
            return Ok(f(&Jni { env, _thread: PhantomData }));
        }
        self.attach_current_thread_as_daemon(name)?;
        let r = self.with_env(f);
        self.detach_current_thread();
        r.ok_or(sys::JNI_ERR)
    }

    /// The JNI environment of the calling thread, if it is attached.
    fn current_env(self) -> Option<*mut sys::JNIEnv> {
        let mut env: *mut c_void = ptr::null_mut();
        // SAFETY: as in `jvmti`; GetEnv only reads the current thread's attachment.
        let rc = unsafe { (**self.0).GetEnv.map(|g| g(self.0, &mut env, sys::JNI_VERSION_1_8 as i32)) };
        (rc == Some(0) && !env.is_null()).then_some(env.cast())
    }

    /// Attaches the current (agent-owned) thread as a daemon, so the JVM can still exit after
    /// `main` while our threads run.
    fn attach_current_thread_as_daemon(self, name: &str) -> Result<(), i32> {
        let name = CString::new(name.replace('\0', " ")).unwrap_or_default();
        let mut args = sys::JavaVMAttachArgs {
            version: sys::JNI_VERSION_1_8 as i32,
            name: name.as_ptr().cast_mut(),
            group: ptr::null_mut(),
        };
        let mut env: *mut c_void = ptr::null_mut();
        // SAFETY: attaches the calling native thread; `args` outlives the call.
        let rc = unsafe {
            (**self.0)
                .AttachCurrentThreadAsDaemon
                .map(|f| f(self.0, &mut env, (&mut args as *mut sys::JavaVMAttachArgs).cast()))
        };
        match rc {
            Some(0) => Ok(()),
            Some(rc) => Err(rc),
            None => Err(sys::JNI_ERR),
        }
    }

    /// Detaches the current thread; a thread not attached is left as it is.
    fn detach_current_thread(self) {
        // SAFETY: detaching the calling thread; a no-op error for a thread never attached.
        unsafe {
            if let Some(f) = (**self.0).DetachCurrentThread {
                f(self.0);
            }
        }
    }
}

/// The JNI environment of the current thread. Not `Send`: valid only on its thread.
pub struct Jni<'a> {
    env: *mut sys::JNIEnv,
    _thread: PhantomData<&'a *mut ()>,
}

/// A local reference (possibly null), valid while the [`Jni`] it came from is.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    obj: sys::jobject,
    _env: PhantomData<&'a ()>,
}

impl Local<'_> {
    pub(super) fn raw(&self) -> sys::jobject {
        self.obj
    }
    pub fn is_null(&self) -> bool {
        self.obj.is_null()
    }
}

impl<'a> Jni<'a> {
    pub(super) fn from_raw(env: *mut sys::JNIEnv) -> Jni<'a> {
        Jni { env, _thread: PhantomData }
    }

    pub(super) fn local(&self, obj: sys::jobject) -> Local<'a> {
        Local { obj, _env: PhantomData }
    }

    pub(super) fn delete_local(&self, obj: sys::jobject) {
        if !obj.is_null() {
            jni_call!(self.env, DeleteLocalRef, obj);
        }
    }

    /// Frees a local reference early (in loops that would otherwise pile them up).
    pub fn delete_local_ref(&self, obj: Local<'_>) {
        self.delete_local(obj.raw());
    }

    /// Runs `f` inside a JNI local frame, so that the local references it creates are freed
    /// (agent threads never return to Java, which would free them otherwise).
    pub fn with_local_frame<R>(&self, capacity: i32, f: impl FnOnce(&Jni<'_>) -> R) -> R {
        let pushed = jni_call!(self.env, PushLocalFrame, capacity) == Some(0);
        let result = f(&Jni { env: self.env, _thread: PhantomData });
        if pushed {
            jni_call!(self.env, PopLocalFrame, ptr::null_mut());
        }
        result
    }

    /// Whether a Java exception is pending; if so it is cleared.
    pub fn clear_exception(&self) -> bool {
        let pending = jni_call!(self.env, ExceptionCheck) == Some(1);
        if pending {
            jni_call!(self.env, ExceptionClear);
        }
        pending
    }

    /// `FindClass`; `None` (and no pending exception) when the class does not exist.
    pub fn find_class(&self, internal_name: &str) -> Option<Local<'a>> {
        let name = CString::new(internal_name).ok()?;
        let class = jni_call!(self.env, FindClass, name.as_ptr()).unwrap_or(ptr::null_mut());
        self.clear_exception();
        (!class.is_null()).then(|| self.local(class))
    }

    /// `Class.forName(dotted, false, loader)`: the class as `loader` sees it, loaded but not
    /// initialized; the error is the Java exception (`java.lang.ClassNotFoundException: x.Y`).
    pub fn class_for_name(&self, dotted: &str, loader: &Local<'_>) -> Result<Local<'a>, String> {
        let class_class = self.find_class("java/lang/Class").ok_or("java.lang.Class is missing")?;
        let for_name = jni_call!(
            self.env,
            GetStaticMethodID,
            class_class.raw(),
            c"forName".as_ptr(),
            c"(Ljava/lang/String;ZLjava/lang/ClassLoader;)Ljava/lang/Class;".as_ptr()
        )
        .unwrap_or(ptr::null_mut());
        if for_name.is_null() {
            return Err(self.pending_exception_text().unwrap_or_else(|| "no Class.forName".to_string()));
        }
        let name = CString::new(dotted).map_err(|_| format!("class name {dotted:?} contains NUL"))?;
        let jname = jni_call!(self.env, NewStringUTF, name.as_ptr()).unwrap_or(ptr::null_mut());
        if jname.is_null() {
            return Err(self.pending_exception_text().unwrap_or_else(|| "NewStringUTF failed".to_string()));
        }
        let args = [sys::jvalue { l: jname }, sys::jvalue { z: 0 }, sys::jvalue { l: loader.raw() }];
        let class = jni_call!(self.env, CallStaticObjectMethodA, class_class.raw(), for_name, args.as_ptr())
            .unwrap_or(ptr::null_mut());
        self.delete_local(jname);
        match self.pending_exception_text() {
            Some(why) => Err(why),
            None if class.is_null() => Err("Class.forName returned null".to_string()),
            None => Ok(self.local(class)),
        }
    }

    /// The superclass of `class` (null for `Object` and interfaces).
    pub fn superclass(&self, class: &Local<'_>) -> Local<'a> {
        self.local(jni_call!(self.env, GetSuperclass, class.raw()).unwrap_or(ptr::null_mut()))
    }

    /// `IsAssignableFrom`: whether an instance of `sub` is a `sup`.
    pub fn is_assignable(&self, sub: &Local<'_>, sup: &Local<'_>) -> bool {
        jni_call!(self.env, IsAssignableFrom, sub.raw(), sup.raw()) == Some(1)
    }

    /// `GetMethodID` of `<init>`: the constructor with `descriptor` that `class` itself declares
    /// (constructors are not inherited); `None` (and no pending exception) when there is none.
    /// Initializes the class, as a constructor call would.
    pub fn constructor(&self, class: &Local<'_>, descriptor: &str) -> Option<super::MethodId> {
        let d = CString::new(descriptor).ok()?;
        let m =
            jni_call!(self.env, GetMethodID, class.raw(), c"<init>".as_ptr(), d.as_ptr()).unwrap_or(ptr::null_mut());
        self.clear_exception();
        (!m.is_null()).then_some(super::MethodId(m))
    }

    /// `GetStaticMethodID`: the static method `name` with `descriptor` that `class` declares or
    /// inherits; `None` (and no pending exception) when there is none.
    pub fn static_method(&self, class: &Local<'_>, name: &str, descriptor: &str) -> Option<super::MethodId> {
        let (n, d) = (CString::new(name).ok()?, CString::new(descriptor).ok()?);
        let m = jni_call!(self.env, GetStaticMethodID, class.raw(), n.as_ptr(), d.as_ptr()).unwrap_or(ptr::null_mut());
        self.clear_exception();
        (!m.is_null()).then_some(super::MethodId(m))
    }

    /// Defines a class in the bootstrap loader from `bytes`; the error is the Java exception's
    /// class name when the JVM refuses.
    pub fn define_bootstrap_class(&self, internal_name: &str, bytes: &[u8]) -> Result<Local<'a>, String> {
        let name = CString::new(internal_name).map_err(|_| format!("class name {internal_name:?} contains NUL"))?;
        let class =
            jni_call!(self.env, DefineClass, name.as_ptr(), ptr::null_mut(), bytes.as_ptr().cast(), bytes.len() as i32)
                .unwrap_or(ptr::null_mut());
        if class.is_null() {
            let why = self.pending_exception_text().unwrap_or_else(|| "DefineClass returned null".to_string());
            return Err(format!("cannot define {internal_name} in the bootstrap class loader: {why}"));
        }
        Ok(self.local(class))
    }

    /// Binds native methods of `class` to Rust functions: `(name, descriptor, function)`.
    pub(super) fn register_natives(
        &self,
        class: &Local<'_>,
        methods: &[(&str, &str, *mut c_void)],
    ) -> Result<(), String> {
        let names: Vec<(CString, CString)> = methods
            .iter()
            .map(|(n, d, _)| (CString::new(*n).unwrap_or_default(), CString::new(*d).unwrap_or_default()))
            .collect();
        let table: Vec<sys::JNINativeMethod> = names
            .iter()
            .zip(methods)
            .map(|((n, d), (_, _, f))| sys::JNINativeMethod {
                name: n.as_ptr().cast_mut(),
                signature: d.as_ptr().cast_mut(),
                fnPtr: *f,
            })
            .collect();
        let rc = jni_call!(self.env, RegisterNatives, class.raw(), table.as_ptr(), table.len() as i32);
        if rc == Some(0) {
            Ok(())
        } else {
            let why = self.pending_exception_text().unwrap_or_else(|| format!("return code {rc:?}"));
            Err(format!("RegisterNatives failed: {why}"))
        }
    }

    /// The class of an object.
    pub fn object_class(&self, obj: &Local<'_>) -> Local<'a> {
        self.local(jni_call!(self.env, GetObjectClass, obj.raw()).unwrap_or(ptr::null_mut()))
    }

    /// The result of `throwable.getMessage()`, or `None` when it is null or the call throws (the
    /// exception it throws is cleared: the agent must not change what the program sees).
    pub fn throwable_message(&self, throwable: &Local<'_>) -> Option<String> {
        if throwable.is_null() {
            return None;
        }
        self.with_local_frame(4, |jni| {
            let class = jni.find_class("java/lang/Throwable")?;
            let method =
                jni_call!(jni.env, GetMethodID, class.raw(), c"getMessage".as_ptr(), c"()Ljava/lang/String;".as_ptr())
                    .unwrap_or(ptr::null_mut());
            if method.is_null() {
                jni.clear_exception();
                return None;
            }
            let msg =
                jni_call!(jni.env, CallObjectMethodA, throwable.raw(), method, ptr::null()).unwrap_or(ptr::null_mut());
            if jni.clear_exception() || msg.is_null() {
                return None;
            }
            jni.string(msg)
        })
    }

    /// The first elements of `throwable`'s stack trace, innermost first, from
    /// `Throwable.getStackTrace()` (Java code: the JVM fills the elements in lazily); empty when
    /// the call throws (that exception is cleared).
    pub fn throwable_trace(&self, throwable: &Local<'_>) -> Vec<TraceElement> {
        const MAX_ELEMENTS: i32 = 64;
        if throwable.is_null() {
            return Vec::new();
        }
        self.with_local_frame(8, |jni| {
            let id = |class: &Local<'_>, name: &CStr, sig: &CStr| {
                let m = jni_call!(jni.env, GetMethodID, class.raw(), name.as_ptr(), sig.as_ptr())
                    .unwrap_or(ptr::null_mut());
                if m.is_null() {
                    jni.clear_exception();
                    return None;
                }
                Some(m)
            };
            let mut elements = Vec::new();
            let Some(throwable_class) = jni.find_class("java/lang/Throwable") else { return elements };
            let Some(element) = jni.find_class("java/lang/StackTraceElement") else { return elements };
            let (Some(get_trace), Some(get_class), Some(get_method), Some(get_line)) = (
                id(&throwable_class, c"getStackTrace", c"()[Ljava/lang/StackTraceElement;"),
                id(&element, c"getClassName", c"()Ljava/lang/String;"),
                id(&element, c"getMethodName", c"()Ljava/lang/String;"),
                id(&element, c"getLineNumber", c"()I"),
            ) else {
                return elements;
            };
            let trace = jni_call!(jni.env, CallObjectMethodA, throwable.raw(), get_trace, ptr::null())
                .unwrap_or(ptr::null_mut());
            if jni.clear_exception() || trace.is_null() {
                return elements;
            }
            let len = jni_call!(jni.env, GetArrayLength, trace).unwrap_or(0).clamp(0, MAX_ELEMENTS);
            let text = |obj: sys::jobject, m: sys::jmethodID| {
                let s = jni_call!(jni.env, CallObjectMethodA, obj, m, ptr::null()).unwrap_or(ptr::null_mut());
                if jni.clear_exception() || s.is_null() {
                    return None;
                }
                let text = jni.string(s);
                jni.delete_local(s);
                text
            };
            for i in 0..len {
                let e = jni_call!(jni.env, GetObjectArrayElement, trace, i).unwrap_or(ptr::null_mut());
                if jni.clear_exception() || e.is_null() {
                    break;
                }
                let (class, method) = (text(e, get_class), text(e, get_method));
                let line =
                    jni_call!(jni.env, CallIntMethodA, e, get_line, ptr::null()).filter(|_| !jni.clear_exception());
                jni.delete_local(e);
                let (Some(class), Some(method)) = (class, method) else { break };
                elements.push(TraceElement { class, method, line, native: line == Some(-2) });
            }
            elements
        })
    }

    /// Looks up the wrapper classes [`Jni::wrapped_cause`] looks through, if not yet done: at
    /// start-up rather than at the first throw, which may be on a thread whose stack overflowed,
    /// where loading a class fails. Whether they are known.
    pub fn look_up_wrappers(&self) -> bool {
        Wrappers::get(self).is_some()
    }

    /// The exception that `throwable` wraps when it is one of the wrappers the JDK throws for an
    /// exception that happened elsewhere (`InvocationTargetException`, `ExecutionException`,
    /// `UndeclaredThrowableException`, `CompletionException`, or a subclass) and has a cause.
    /// Read from fields, no Java code runs: an overridden `getCause()` could do anything.
    pub fn wrapped_cause(&self, throwable: &Local<'_>) -> Option<Local<'a>> {
        let wrappers = Wrappers::get(self)?;
        let o = throwable.raw();
        let own = wrappers.classes.iter().find(|(c, _)| jni_call!(self.env, IsInstanceOf, o, c.0) == Some(1))?.1;
        // `InvocationTargetException` keeps its cause in `target` (and passes null to Throwable).
        let read = |field: sys::jfieldID| {
            let cause = jni_call!(self.env, GetObjectField, o, field).unwrap_or(ptr::null_mut());
            // `Throwable.cause` refers to the throwable itself until a cause is set.
            match cause.is_null() || jni_call!(self.env, IsSameObject, cause, o) == Some(1) {
                true => {
                    self.delete_local(cause);
                    None
                }
                false => Some(self.local(cause)),
            }
        };
        own.and_then(read).or_else(|| read(wrappers.cause))
    }

    /// A Java string's contents.
    fn string(&self, s: sys::jobject) -> Option<String> {
        let chars = jni_call!(self.env, GetStringUTFChars, s, ptr::null_mut()).unwrap_or(ptr::null());
        if chars.is_null() {
            self.clear_exception();
            return None;
        }
        let text = super::c_string(chars);
        jni_call!(self.env, ReleaseStringUTFChars, s, chars);
        text
    }

    /// The first characters of a Java string, as many as `units` holds, and whether there were
    /// more; copied without the JVM allocating (an observed value is read on the application's
    /// thread).
    fn string_units(&self, s: sys::jobject, units: &mut [u16]) -> Option<(usize, bool)> {
        let len = jni_call!(self.env, GetStringLength, s)?.max(0) as usize;
        let take = len.min(units.len());
        // In bounds by construction: it cannot throw.
        jni_call!(self.env, GetStringRegion, s, 0, take as sys::jsize, units.as_mut_ptr());
        Some((take, len > take))
    }

    /// Takes the pending exception (clearing it) and describes it as `Class: message`.
    fn pending_exception_text(&self) -> Option<String> {
        let exc = jni_call!(self.env, ExceptionOccurred).unwrap_or(ptr::null_mut());
        if exc.is_null() {
            return None;
        }
        jni_call!(self.env, ExceptionClear);
        let exc = self.local(exc);
        let class = self.object_class(&exc);
        let name = self.class_name_of(&class);
        let text = match self.throwable_message(&exc) {
            Some(m) => format!("{name}: {m}"),
            None => name,
        };
        self.delete_local(class.raw());
        self.delete_local(exc.raw());
        Some(text)
    }

    /// `Class.getName()` of the class of `obj` (`java.lang.String`), or `?`.
    pub fn class_name_of_object(&self, obj: &Local<'_>) -> String {
        self.with_local_frame(2, |jni| {
            let class = jni.object_class(obj);
            jni.class_name_of(&class)
        })
    }

    /// `Class.getName()` of the class of `obj` and of each of its superclasses, most specific
    /// first, up to `java.lang.Object` (excluded).
    pub fn class_chain_of_object(&self, obj: &Local<'_>, max: usize) -> Vec<String> {
        self.with_local_frame(2 * max as i32 + 2, |jni| {
            let mut chain = Vec::new();
            let mut class = jni.object_class(obj);
            while !class.is_null() && chain.len() < max {
                let name = jni.class_name_of(&class);
                if name == "java.lang.Object" {
                    break;
                }
                chain.push(name);
                class = jni.local(jni_call!(jni.env, GetSuperclass, class.raw()).unwrap_or(ptr::null_mut()));
            }
            chain
        })
    }

    /// Short text for a captured value: `null`, a string (quoted) or boxed primitive by value,
    /// `<class name>` for other objects (their `toString` is application code the agent must not
    /// run on the application's thread).
    pub fn value_text(&self, obj: &Local<'_>) -> String {
        self.value(obj).to_string()
    }

    /// A captured value as an observation's condition compares it and its stream shows it:
    /// strings and boxed primitives by value (strings cut at 200 characters), arrays by their
    /// first elements, other objects by their class (their `toString` is application code).
    ///
    /// This runs on the application's thread for each observed value, so strings and boxes are
    /// recognised by identity against classes looked up once ([`Plain`]) and read with two or
    /// three JNI calls: no Java code, no class-name lookup, no allocation in the JVM.
    pub fn value(&self, obj: &Local<'_>) -> repair_model::observe::Value {
        self.value_hinted(obj, &ValueHint::default())
    }

    /// [`Jni::value`], trying first the kind of value `hint` saw last (an argument is mostly of
    /// one class: one `IsInstanceOf` instead of a few); `hint` learns the kind of this one.
    pub fn value_hinted(&self, obj: &Local<'_>, hint: &ValueHint) -> repair_model::observe::Value {
        use repair_model::observe::Value;
        if obj.is_null() {
            return Value::Null;
        }
        if let Some(plain) = self.with_plain(obj, hint, |p| p.map(|p| p.to_value())) {
            return plain;
        }
        self.object_value(obj)
    }

    /// Calls `f` with the value of `obj` (not null) when it is a string or a boxed primitive,
    /// read into a buffer on the stack (nothing allocated: the hooks write it on as bytes), or
    /// with `None` for any other object; `hint` as in [`Jni::value_hinted`].
    pub fn with_plain<R>(&self, obj: &Local<'_>, hint: &ValueHint, f: impl FnOnce(Option<PlainValue<'_>>) -> R) -> R {
        match Plain::get(self) {
            Some(p) => p.read(self, obj, hint, f),
            None => f(None),
        }
    }

    /// [`Jni::value`] of an object that is not a string or a box: an array's first elements, or
    /// the class of anything else.
    pub fn object_value(&self, obj: &Local<'_>) -> repair_model::observe::Value {
        use repair_model::observe::Value;
        let class = self.object_class(obj);
        let name = self.class_name_of(&class);
        self.delete_local(class.raw());
        match name.starts_with("[L") {
            true => Value::Object(self.array_text(obj, 8)),
            false => Value::Object(format!("<{name}>")),
        }
    }

    /// The value at a field path in `obj` (`["items", "size"]`; `length` of an array), read
    /// without running Java code; a `null` on the way gives `null`. The error names the segment
    /// that does not exist.
    pub fn field_path(&self, obj: &Local<'_>, path: &[String]) -> Result<repair_model::observe::Value, String> {
        use repair_model::observe::Value;
        self.with_local_frame(2 * path.len() as i32 + 4, |jni| {
            let mut current = jni.local(obj.raw());
            for (i, segment) in path.iter().enumerate() {
                if current.is_null() {
                    return Ok(Value::Null);
                }
                let class = jni.class_name_of_object(&current);
                if class.starts_with('[') && segment == "length" {
                    let len = jni_call!(jni.env, GetArrayLength, current.raw()).unwrap_or(0);
                    return if i + 1 == path.len() {
                        Ok(Value::Integer(len.into()))
                    } else {
                        Err(format!("{segment} of {class} is a number: it has no field {}", path[i + 1]))
                    };
                }
                match jni.read_field(&current, segment)? {
                    Field::Object(next) => current = next,
                    Field::Value(v) if i + 1 == path.len() => return Ok(v),
                    Field::Value(_) => {
                        return Err(format!("{segment} of {class} is not an object: it has no field {}", path[i + 1]))
                    }
                }
            }
            Ok(jni.value(&current))
        })
    }

    /// The instance field `name` of `obj`, declared by its class or a superclass.
    fn read_field(&self, obj: &Local<'_>, name: &str) -> Result<Field<'a>, String> {
        use repair_model::observe::Value;
        const ACC_STATIC: i32 = 0x0008;
        let jvmti = super::env().ok_or("JVMTI is not available")?;
        let mut class = self.object_class(obj);
        while !class.is_null() {
            let fields = jvmti.class_fields(&class).map_err(|e| e.to_string())?;
            if let Some((id, _, sig, _)) = fields.iter().find(|(_, n, _, m)| n == name && m & ACC_STATIC == 0) {
                let (o, f) = (obj.raw(), id.0);
                let read = match sig.as_bytes().first() {
                    Some(b'Z') => Field::Value(Value::Bool(jni_call!(self.env, GetBooleanField, o, f) == Some(1))),
                    Some(b'B') => {
                        Field::Value(Value::Integer(jni_call!(self.env, GetByteField, o, f).unwrap_or(0).into()))
                    }
                    Some(b'C') => Field::Value(Value::Text(
                        char::from_u32(jni_call!(self.env, GetCharField, o, f).unwrap_or(0) as u32)
                            .map(String::from)
                            .unwrap_or_default(),
                    )),
                    Some(b'S') => {
                        Field::Value(Value::Integer(jni_call!(self.env, GetShortField, o, f).unwrap_or(0).into()))
                    }
                    Some(b'I') => {
                        Field::Value(Value::Integer(jni_call!(self.env, GetIntField, o, f).unwrap_or(0).into()))
                    }
                    Some(b'J') => Field::Value(Value::Integer(jni_call!(self.env, GetLongField, o, f).unwrap_or(0))),
                    Some(b'F') => {
                        Field::Value(Value::Number(jni_call!(self.env, GetFloatField, o, f).unwrap_or(0.0) as f64))
                    }
                    Some(b'D') => Field::Value(Value::Number(jni_call!(self.env, GetDoubleField, o, f).unwrap_or(0.0))),
                    _ => {
                        Field::Object(self.local(jni_call!(self.env, GetObjectField, o, f).unwrap_or(ptr::null_mut())))
                    }
                };
                return Ok(read);
            }
            class = self.local(jni_call!(self.env, GetSuperclass, class.raw()).unwrap_or(ptr::null_mut()));
        }
        Err(format!("{} has no field {name}", self.class_name_of_object(obj)))
    }

    /// `obj` rendered to `depth` levels of fields (Arthas's `-x`): at depth 0 as [`Jni::value`]
    /// shows it; deeper, an object as `Class{field=value, ...}` and an array by its first elements,
    /// each at most `max` fields or elements, the whole cut at 2,000 characters.
    pub fn render(&self, obj: &Local<'_>, depth: u32, max: usize) -> String {
        let mut text = self.render_at(obj, depth, max);
        if text.chars().count() > 2000 {
            text = format!("{}...", text.chars().take(2000).collect::<String>());
        }
        text
    }

    fn render_at(&self, obj: &Local<'_>, depth: u32, max: usize) -> String {
        const ACC_STATIC: i32 = 0x0008;
        let plain = self.value(obj);
        if depth == 0 || !matches!(plain, repair_model::observe::Value::Object(_)) {
            return plain.to_string();
        }
        self.with_local_frame(2 * max as i32 + 8, |jni| {
            let class = jni.class_name_of_object(obj);
            if class.starts_with("[L") || class.starts_with("[[") {
                let len = jni_call!(jni.env, GetArrayLength, obj.raw()).unwrap_or(0).max(0) as usize;
                let mut parts: Vec<String> = (0..len.min(max))
                    .map(|i| {
                        let e =
                            jni_call!(jni.env, GetObjectArrayElement, obj.raw(), i as i32).unwrap_or(ptr::null_mut());
                        jni.clear_exception();
                        jni.render_at(&jni.local(e), depth - 1, max)
                    })
                    .collect();
                if len > max {
                    parts.push(format!("... {} more", len - max));
                }
                return format!("[{}]", parts.join(", "));
            }
            let Some(jvmti) = super::env() else { return plain.to_string() };
            let mut fields = Vec::new();
            let mut c = jni.object_class(obj);
            while !c.is_null() && fields.len() < max {
                for (_, name, _, m) in jvmti.class_fields(&c).unwrap_or_default() {
                    if m & ACC_STATIC == 0 && fields.len() < max {
                        fields.push(name);
                    }
                }
                c = jni.local(jni_call!(jni.env, GetSuperclass, c.raw()).unwrap_or(ptr::null_mut()));
            }
            let parts: Vec<String> = fields
                .iter()
                .map(|name| {
                    let value = match jni.read_field(obj, name) {
                        Ok(Field::Object(o)) => jni.render_at(&o, depth - 1, max),
                        Ok(Field::Value(v)) => v.to_string(),
                        Err(e) => format!("<{e}>"),
                    };
                    format!("{name}={value}")
                })
                .collect();
            format!("{class}{{{}}}", parts.join(", "))
        })
    }

    /// The first `max` elements of an `Object[]`, as local references (free them, or call this
    /// inside a local frame).
    pub fn array_elements(&self, array: &Local<'_>, max: usize) -> Vec<Local<'a>> {
        (0..self.array_length(array).min(max)).map(|i| self.array_element(array, i)).collect()
    }

    /// The length of an array (0 for `null`).
    pub fn array_length(&self, array: &Local<'_>) -> usize {
        if array.is_null() {
            return 0;
        }
        jni_call!(self.env, GetArrayLength, array.raw()).unwrap_or(0).max(0) as usize
    }

    /// Element `i` of an `Object[]`, `i` below [`Jni::array_length`] (so the read cannot throw).
    pub fn array_element(&self, array: &Local<'_>, i: usize) -> Local<'a> {
        self.local(jni_call!(self.env, GetObjectArrayElement, array.raw(), i as i32).unwrap_or(ptr::null_mut()))
    }

    /// [`Jni::value_text`] of the first `max` elements of an `Object[]`, comma-separated.
    pub fn array_text(&self, array: &Local<'_>, max: usize) -> String {
        if array.is_null() {
            return "null".to_string();
        }
        let len = jni_call!(self.env, GetArrayLength, array.raw()).unwrap_or(0).max(0) as usize;
        let mut parts = Vec::with_capacity(len.min(max));
        for i in 0..len.min(max) {
            let text = self.with_local_frame(2, |jni| {
                let e = jni_call!(jni.env, GetObjectArrayElement, array.raw(), i as i32).unwrap_or(ptr::null_mut());
                jni.clear_exception();
                jni.value_text(&jni.local(e))
            });
            parts.push(text);
        }
        if len > max {
            parts.push(format!("... {} more", len - max));
        }
        format!("[{}]", parts.join(", "))
    }

    /// The name of a class as `Class.getName()` gives it (`java.lang.String`, `[I`), from its
    /// JVMTI signature: no Java code runs, so it works on a thread whose stack overflowed.
    /// `?` when it cannot be had.
    fn class_name_of(&self, class: &Local<'_>) -> String {
        if class.is_null() {
            return "?".to_string();
        }
        match super::env().map(|jvmti| jvmti.class_signature(class)) {
            Some(Ok(sig)) => class_name_from_signature(&sig),
            _ => "?".to_string(),
        }
    }

    /// Whether two references are to the same object.
    pub fn same_object(&self, a: &Local<'_>, b: &Local<'_>) -> bool {
        jni_call!(self.env, IsSameObject, a.raw(), b.raw()) == Some(1)
    }

    /// `ClassLoader.getSystemClassLoader()`.
    pub fn system_class_loader(&self) -> Result<Local<'a>, String> {
        let class = self.find_class("java/lang/ClassLoader").ok_or("java.lang.ClassLoader is missing")?;
        let m = jni_call!(
            self.env,
            GetStaticMethodID,
            class.raw(),
            c"getSystemClassLoader".as_ptr(),
            c"()Ljava/lang/ClassLoader;".as_ptr()
        )
        .unwrap_or(ptr::null_mut());
        if m.is_null() {
            return Err(self.pending_exception_text().unwrap_or_else(|| "no getSystemClassLoader".to_string()));
        }
        let loader =
            jni_call!(self.env, CallStaticObjectMethodA, class.raw(), m, ptr::null()).unwrap_or(ptr::null_mut());
        match self.pending_exception_text() {
            Some(why) => Err(why),
            None if loader.is_null() => Err("no system class loader".to_string()),
            None => Ok(self.local(loader)),
        }
    }

    /// The bytes of the resource `path` (`com/shop/Cart.class`) as `loader` finds it
    /// (`getResourceAsStream`, then `readAllBytes`), `None` when it has none. Runs the loader's
    /// Java code on this thread: only for agent threads, never inside a JVMTI callback.
    pub fn resource_bytes(&self, loader: &Local<'_>, path: &str) -> Result<Option<Vec<u8>>, String> {
        self.with_local_frame(8, |jni| {
            let method = |class: &str, name: &CStr, descriptor: &CStr| -> Result<sys::jmethodID, String> {
                let c = jni.find_class(class).ok_or_else(|| format!("{class} is missing"))?;
                let m = jni_call!(jni.env, GetMethodID, c.raw(), name.as_ptr(), descriptor.as_ptr())
                    .unwrap_or(ptr::null_mut());
                if m.is_null() {
                    return Err(jni.pending_exception_text().unwrap_or_else(|| format!("{class} lacks {name:?}")));
                }
                Ok(m)
            };
            let open =
                method("java/lang/ClassLoader", c"getResourceAsStream", c"(Ljava/lang/String;)Ljava/io/InputStream;")?;
            let read_all = method("java/io/InputStream", c"readAllBytes", c"()[B")?;
            let close = method("java/io/InputStream", c"close", c"()V")?;
            let name = CString::new(path).map_err(|_| format!("{path:?} contains NUL"))?;
            let jname = jni_call!(jni.env, NewStringUTF, name.as_ptr()).unwrap_or(ptr::null_mut());
            if jname.is_null() {
                return Err(jni.pending_exception_text().unwrap_or_else(|| "NewStringUTF failed".to_string()));
            }
            let args = [sys::jvalue { l: jname }];
            let stream =
                jni_call!(jni.env, CallObjectMethodA, loader.raw(), open, args.as_ptr()).unwrap_or(ptr::null_mut());
            if let Some(why) = jni.pending_exception_text() {
                return Err(why);
            }
            if stream.is_null() {
                return Ok(None);
            }
            let array = jni_call!(jni.env, CallObjectMethodA, stream, read_all, ptr::null()).unwrap_or(ptr::null_mut());
            let read = jni.pending_exception_text();
            jni_call!(jni.env, CallVoidMethodA, stream, close, ptr::null());
            jni.clear_exception();
            if let Some(why) = read {
                return Err(why);
            }
            let len = jni_call!(jni.env, GetArrayLength, array).unwrap_or(0).max(0) as usize;
            let mut bytes = vec![0u8; len];
            jni_call!(jni.env, GetByteArrayRegion, array, 0, len as i32, bytes.as_mut_ptr().cast());
            if let Some(why) = jni.pending_exception_text() {
                return Err(why);
            }
            Ok(Some(bytes))
        })
    }

    /// A weak global reference to `obj` (it does not keep `obj` alive); `None` if out of memory.
    pub fn new_weak(&self, obj: &Local<'_>) -> Option<Weak> {
        let w = jni_call!(self.env, NewWeakGlobalRef, obj.raw()).unwrap_or(ptr::null_mut());
        (!w.is_null()).then_some(Weak(w))
    }

    /// Whether `weak` refers to `obj` (false once its object was collected and `obj` is not null).
    pub fn is_same(&self, weak: &Weak, obj: &Local<'_>) -> bool {
        jni_call!(self.env, IsSameObject, weak.0, obj.raw()) == Some(1)
    }

    pub fn delete_weak(&self, weak: Weak) {
        jni_call!(self.env, DeleteWeakGlobalRef, weak.0);
    }
}

/// One element of a throwable's stack trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceElement {
    /// Dotted class name.
    pub class: String,
    pub method: String,
    /// As `getLineNumber` gives it: negative when unknown (-1) or native (-2).
    pub line: Option<i32>,
    pub native: bool,
}

/// The wrapper exception classes [`Jni::wrapped_cause`] looks through, each with the field of
/// its own that holds the cause (if it has one), and `Throwable.cause`.
struct Wrappers {
    classes: Vec<(Global, Option<sys::jfieldID>)>,
    cause: sys::jfieldID,
}

// SAFETY: global references and field ids are valid on every thread (JNI spec); these are of
// bootstrap classes, never unloaded.
unsafe impl Send for Wrappers {}
// SAFETY: as above; both are only read.
unsafe impl Sync for Wrappers {}

static WRAPPERS: std::sync::OnceLock<Option<Wrappers>> = std::sync::OnceLock::new();

impl Wrappers {
    /// Looked up on first use; a wrapper class this JDK lacks is left out.
    fn get(jni: &Jni<'_>) -> Option<&'static Wrappers> {
        WRAPPERS.get_or_init(|| jni.with_local_frame(16, Wrappers::look_up)).as_ref()
    }

    fn look_up(jni: &Jni<'_>) -> Option<Wrappers> {
        let field = |class: &Local<'_>, name: &CStr| {
            let f = jni_call!(jni.env, GetFieldID, class.raw(), name.as_ptr(), c"Ljava/lang/Throwable;".as_ptr())
                .unwrap_or(ptr::null_mut());
            jni.clear_exception();
            (!f.is_null()).then_some(f)
        };
        let throwable = jni.find_class("java/lang/Throwable")?;
        let cause = field(&throwable, c"cause")?;
        let classes = [
            ("java/lang/reflect/InvocationTargetException", Some(c"target")),
            ("java/util/concurrent/ExecutionException", None),
            // Before JDK 16 it kept the cause in a field of its own.
            ("java/lang/reflect/UndeclaredThrowableException", Some(c"undeclaredThrowable")),
            ("java/util/concurrent/CompletionException", None),
        ]
        .into_iter()
        .filter_map(|(name, own)| {
            let class = jni.find_class(name)?;
            let global = jni_call!(jni.env, NewGlobalRef, class.raw()).unwrap_or(ptr::null_mut());
            let own = own.and_then(|f| field(&class, f));
            (!global.is_null()).then_some((Global(global), own))
        })
        .collect();
        Some(Wrappers { classes, cause })
    }
}

/// The classes an observed value is read directly from (strings and the boxed primitives),
/// held by global references looked up once, with each box's `value` field: recognising a value
/// is then an `IsInstanceOf` or a few (the classes are final: an instance is of that class), where
/// a JVMTI class-name lookup costs more than the rest of a report.
struct Plain {
    /// The string class first, then the boxes with their `value` field.
    classes: [(Global, sys::jfieldID, Boxed); 9],
}

/// The kind of value an observed argument or return value had last (an index into
/// [`Plain::classes`]), to try first next time; or, when its declared type says what every
/// value is ([`ValueHint::declare`]), that kind with [`ValueHint::EXACT`].
#[derive(Debug, Default)]
pub struct ValueHint(std::sync::atomic::AtomicU8);

impl ValueHint {
    /// Set on a kind the declared type guarantees: read without an `IsInstanceOf`.
    const EXACT: u8 = 0x80;

    /// The declared type (a field descriptor: `I`, `Ljava/lang/String;`, ...) of the value this
    /// hint reads, when every method it reads for declares the same: a primitive (the probe
    /// boxes it) or a `String` (a final class) is always of one plain kind, so it is read without
    /// asking the JVM which. `None` or another type: the kind is learned as values come.
    pub fn declare(&self, descriptor: Option<&str>) {
        use std::sync::atomic::Ordering::Relaxed;
        let kind = match descriptor {
            Some("Ljava/lang/String;") => Some(Boxed::String),
            Some("I") => Some(Boxed::Int),
            Some("J") => Some(Boxed::Long),
            Some("Z") => Some(Boxed::Boolean),
            Some("D") => Some(Boxed::Double),
            Some("C") => Some(Boxed::Char),
            Some("S") => Some(Boxed::Short),
            Some("B") => Some(Boxed::Byte),
            Some("F") => Some(Boxed::Float),
            _ => None,
        };
        self.0.store(kind.map_or(0, |k| k as u8 | Self::EXACT), Relaxed);
    }
}

/// The plain kinds, each at its index in [`Plain::classes`].
#[derive(Clone, Copy)]
enum Boxed {
    String,
    Int,
    Long,
    Boolean,
    Double,
    Char,
    Short,
    Byte,
    Float,
}

/// A global reference the agent never frees (a bootstrap class: never unloaded).
struct Global(sys::jobject);

// SAFETY: global references are valid on every thread (JNI spec, "Global and Local References");
// field ids are valid on every thread while their class is loaded (bootstrap classes stay).
unsafe impl Send for Plain {}
// SAFETY: as above; both are only read.
unsafe impl Sync for Plain {}

static PLAIN: std::sync::OnceLock<Option<Plain>> = std::sync::OnceLock::new();

impl Plain {
    /// The classes, looked up on first use (all are loaded before any application code runs).
    fn get(jni: &Jni<'_>) -> Option<&'static Plain> {
        PLAIN.get_or_init(|| jni.with_local_frame(24, Plain::look_up)).as_ref()
    }

    fn look_up(jni: &Jni<'_>) -> Option<Plain> {
        let global = |class: &Local<'_>| {
            let g = jni_call!(jni.env, NewGlobalRef, class.raw()).unwrap_or(ptr::null_mut());
            (!g.is_null()).then_some(Global(g))
        };
        let boxed = |name: &str, sig: &CStr, kind: Boxed| {
            let class = jni.find_class(name)?;
            let field = jni_call!(jni.env, GetFieldID, class.raw(), c"value".as_ptr(), sig.as_ptr())?;
            if field.is_null() {
                jni.clear_exception();
                return None;
            }
            Some((global(&class)?, field, kind))
        };
        let string = jni.find_class("java/lang/String")?;
        let plain = Plain {
            // Most often seen first: each miss is one more `IsInstanceOf`.
            classes: [
                (global(&string)?, ptr::null_mut(), Boxed::String),
                boxed("java/lang/Integer", c"I", Boxed::Int)?,
                boxed("java/lang/Long", c"J", Boxed::Long)?,
                boxed("java/lang/Boolean", c"Z", Boxed::Boolean)?,
                boxed("java/lang/Double", c"D", Boxed::Double)?,
                boxed("java/lang/Character", c"C", Boxed::Char)?,
                boxed("java/lang/Short", c"S", Boxed::Short)?,
                boxed("java/lang/Byte", c"B", Boxed::Byte)?,
                boxed("java/lang/Float", c"F", Boxed::Float)?,
            ],
        };
        // ValueHint::declare names a kind by its index here.
        debug_assert!(plain.classes.iter().enumerate().all(|(i, c)| c.2 as usize == i));
        Some(plain)
    }

    /// Calls `f` with the value of `obj` (not null) when it is a string or a box, `None`
    /// otherwise.
    fn read<R>(
        &self,
        jni: &Jni<'_>,
        obj: &Local<'_>,
        hint: &ValueHint,
        f: impl FnOnce(Option<PlainValue<'_>>) -> R,
    ) -> R {
        use std::sync::atomic::Ordering::Relaxed;
        let o = obj.raw();
        let is = |i: usize| jni_call!(jni.env, IsInstanceOf, o, self.classes[i].0 .0) == Some(1);
        let hint_now = hint.0.load(Relaxed);
        let hinted = usize::from(hint_now & !ValueHint::EXACT).min(self.classes.len() - 1);
        let i = match hint_now & ValueHint::EXACT != 0 || is(hinted) {
            true => hinted,
            false => match (0..self.classes.len()).filter(|i| *i != hinted).find(|i| is(*i)) {
                Some(i) => {
                    hint.0.store(i as u8, Relaxed);
                    i
                }
                None => return f(None),
            },
        };
        let (_, field, kind) = self.classes[i];
        let mut units = [0u16; PlainValue::MAX_CHARS];
        let value = match kind {
            Boxed::String => {
                jni.string_units(o, &mut units).map(|(n, cut)| PlainValue::Text { units: &units[..n], cut })
            }
            Boxed::Int => jni_call!(jni.env, GetIntField, o, field).map(|v| PlainValue::Integer(v.into())),
            Boxed::Long => jni_call!(jni.env, GetLongField, o, field).map(PlainValue::Integer),
            Boxed::Short => jni_call!(jni.env, GetShortField, o, field).map(|v| PlainValue::Integer(v.into())),
            Boxed::Byte => jni_call!(jni.env, GetByteField, o, field).map(|v| PlainValue::Integer(v.into())),
            Boxed::Boolean => jni_call!(jni.env, GetBooleanField, o, field).map(|v| PlainValue::Bool(v == 1)),
            Boxed::Double => jni_call!(jni.env, GetDoubleField, o, field).map(PlainValue::Number),
            Boxed::Float => jni_call!(jni.env, GetFloatField, o, field).map(|v| PlainValue::Number(v.into())),
            Boxed::Char => jni_call!(jni.env, GetCharField, o, field).map(|c| {
                units[0] = c;
                PlainValue::Text { units: &units[..1], cut: false }
            }),
        };
        f(value)
    }
}

/// A string or a boxed primitive as read from the JVM, borrowing the string's characters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlainValue<'u> {
    Bool(bool),
    Integer(i64),
    Number(f64),
    /// A string's first UTF-16 units (a `char` is a string of one), and whether it was cut.
    Text {
        units: &'u [u16],
        cut: bool,
    },
}

impl PlainValue<'_> {
    /// Characters of a string read, at most.
    pub const MAX_CHARS: usize = 200;

    pub fn to_value(self) -> repair_model::observe::Value {
        use repair_model::observe::Value;
        match self {
            PlainValue::Bool(b) => Value::Bool(b),
            PlainValue::Integer(n) => Value::Integer(n),
            PlainValue::Number(n) => Value::Number(n),
            PlainValue::Text { units, cut } => {
                let mut text = String::from_utf16_lossy(units);
                if cut {
                    text.push_str("...");
                }
                Value::Text(text)
            }
        }
    }
}

/// What a field holds: an object (a local reference) or a primitive value.
enum Field<'a> {
    Object(Local<'a>),
    Value(repair_model::observe::Value),
}

/// A weak global reference, usable from any thread; freed only by [`Jni::delete_weak`].
#[derive(Debug)]
pub struct Weak(sys::jweak);

// SAFETY: global references (weak ones too) are valid on every thread (JNI spec, "Global and
// Local References").
unsafe impl Send for Weak {}
// SAFETY: as above; the reference is only read.
unsafe impl Sync for Weak {}

/// `Lcom/shop/Price;` → `com.shop.Price`; `[Ljava/lang/String;` → `[Ljava.lang.String;` (what
/// `Class.getName()` returns for each).
fn class_name_from_signature(sig: &str) -> String {
    super::internal_name(sig).unwrap_or(sig).replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::class_name_from_signature;

    #[test]
    fn signatures_become_the_names_class_get_name_gives() {
        assert_eq!(class_name_from_signature("Ljava/lang/StackOverflowError;"), "java.lang.StackOverflowError");
        assert_eq!(class_name_from_signature("[Ljava/lang/String;"), "[Ljava.lang.String;");
        assert_eq!(class_name_from_signature("[[I"), "[[I");
        assert_eq!(class_name_from_signature("LMain$Inner;"), "Main$Inner");
    }
}
