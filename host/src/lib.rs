//! The Reprise host. See `ARCHITECTURE.md` at the repository root for the map.
//!
//! Layers, with dependencies pointing one way:
//! [`api`] → [`engine`] → [`store`] and [`runtime`]; [`model`] is shared by all.

pub mod api;
pub mod engine;
pub mod model;
pub mod runtime;
pub mod server;
pub mod store;
