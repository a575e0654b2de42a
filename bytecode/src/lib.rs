//! The class-file engine of repair.
