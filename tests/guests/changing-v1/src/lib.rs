//! Version v1 of "Changing", for the version tests. The two versions
//! differ only in `VERSION`; the rest is `../changing/body.rs`:
//! - `Changing` sets it as custom status before waiting for "go", so
//!   replaying a v1 history with v2 is non-deterministic;
//! - `ChangingEternal` sets it, waits for "next" and continues as new: the
//!   next generation shows which version it runs on;
//! - `ChangingWithActivity` waits for "go" and returns what activity
//!   `WhichVersion` answers: which version ran the activity.

const VERSION: &str = "v1";

include!("../../changing/body.rs");
