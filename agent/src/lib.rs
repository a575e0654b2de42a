//! librepair.so: the JVMTI agent of repair.
//!
//! [`jvmti`] is the only module with `unsafe` code: bindings, the safe wrapper and the
//! `extern "C"` entry points. [`agent`] holds the agent's state and reacts to JVM events;
//! [`faults`], [`hooks`] and [`patches`] are the parts it is made of.

mod agent;
pub mod api;
mod api_impl;
mod audit;
mod breakers;
mod config;
pub mod control;
mod events;
mod faults;
mod healing;
mod hooks;
mod jvmti;
mod patches;
mod service;

/// Logs to the JVM's stderr when the agent's log level allows `$level`.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $($arg:tt)*) => {
        if $crate::agent::log_enabled($level) {
            $crate::agent::log_line(&format!($($arg)*));
        }
    };
}
#[macro_export]
macro_rules! log_error { ($($arg:tt)*) => { $crate::log_at!($crate::config::LogLevel::Error, $($arg)*) }; }
#[macro_export]
macro_rules! log_warn { ($($arg:tt)*) => { $crate::log_at!($crate::config::LogLevel::Warn, $($arg)*) }; }
#[macro_export]
macro_rules! log_info { ($($arg:tt)*) => { $crate::log_at!($crate::config::LogLevel::Info, $($arg)*) }; }
#[macro_export]
macro_rules! log_debug { ($($arg:tt)*) => { $crate::log_at!($crate::config::LogLevel::Debug, $($arg)*) }; }
