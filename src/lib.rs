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
}
