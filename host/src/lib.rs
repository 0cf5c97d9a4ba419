//! The Reprise host. See `ARCHITECTURE.md` at the repository root for the map.
//!
//! Layers, with dependencies pointing one way:
//! [`api`] → [`engine`] → [`store`] and [`runtime`]; [`model`] is shared by all.
//! [`cli`] is a client of [`api`] over HTTP, not a layer above it.

pub mod api;
pub mod cli;
pub mod dashboard;
pub mod engine;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod traces;

pub use reprise_core::{entity, model, store};
