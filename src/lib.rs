//! Shared model of repair: patch specs, the control-plane contract, and the gRPC client.

pub mod attach;
pub mod cli;
pub mod client;
pub mod deploy;
pub mod endpoint;
pub mod fleet;
pub mod glob;
pub mod journal;
pub mod observe;
pub mod policy;
pub mod rank;
pub mod spec;

pub mod proto {
    //! Generated control-plane types (`proto/repair/v1`).
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("repair.v1");

    /// Encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/repair_descriptor.bin"));

    /// Field numbers (proto/repair/v1/agent.proto) of the messages the agent writes and
    /// `repairctl` reads in protobuf's wire form themselves (a watched call, by the hundred
    /// thousand a second): one place for both sides.
    pub mod field {
        /// `Observed`.
        pub mod observed {
            pub const OBSERVATION: u32 = 1;
            pub const CALL: u32 = 2;
            pub const DROPPED: u32 = 6;
            pub const CALLS: u32 = 11;
            /// Every field of the `what` oneof.
            pub const WHAT: [u32; 10] = [CALL, 3, 4, 5, 7, 8, 9, 10, CALLS, 12];
        }
        /// `ObservedCalls`.
        pub mod observed_calls {
            pub const CALLS: u32 = 1;
        }
        /// `ObservedCall`.
        pub mod observed_call {
            pub const THREAD: u32 = 1;
            pub const START_MS: u32 = 2;
            pub const DURATION_NS: u32 = 3;
            pub const ARGS: u32 = 4;
            pub const RETURNED: u32 = 5;
            pub const THROWN: u32 = 6;
            pub const METHOD: u32 = 7;
            pub const VALUES: u32 = 8;
            pub const THIS: u32 = 9;
        }
        /// An entry of a `map<string, string>`.
        pub mod map_entry {
            pub const KEY: u32 = 1;
            pub const VALUE: u32 = 2;
        }
    }
}
