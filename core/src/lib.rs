//! What every part of Reprise shares: the domain ([`model`]) and the store
//! contract ([`store`]) that the engine decides against and each database
//! backend (`reprise-store-sqlite`, `reprise-store-postgres`) implements.
//!
//! Nothing here knows about HTTP, SQL or wasmtime.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod entity;
pub mod failure;
pub mod model;
pub mod store;
pub mod stored_effect;
