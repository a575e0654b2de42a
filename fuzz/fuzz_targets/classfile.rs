//! Any bytes through the reader, the Code codec and the transforms: errors are fine, panics not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repair_bytecode::code::{Code, MethodInfo};
use repair_bytecode::transform::{check_redefinable, guard::guard_all};
use repair_bytecode::ClassFile;

fuzz_target!(|bytes: &[u8]| {
    let Ok(cf) = ClassFile::parse(bytes) else { return };
    let _ = cf.to_bytes();
    if let Ok(name) = cf.name() {
        for m in &cf.methods {
            let (Ok(n), Ok(d)) = (cf.member_name(m), cf.member_descriptor(m)) else { continue };
            let info = MethodInfo { class: &name, name: &n, descriptor: &d, access: m.access };
            if let Some(a) = cf.find_attribute(&m.attributes, "Code") {
                if let Ok(code) = Code::decode(&a.data, &cf.pool, &info) {
                    let mut pool = cf.pool.clone();
                    let _ = code.encode(&mut pool, &info);
                }
            }
        }
    }
    if let Ok((out, _)) = guard_all(bytes) {
        let _ = check_redefinable(bytes, &out);
    }
});
