//! librepair.so: the JVMTI agent.
