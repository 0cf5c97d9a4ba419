//! Integration tests: the real `reprise` binary over real HTTP, a real SQLite
//! file, and real compiled components. One test binary, a module per area.

mod client_log;
mod harness;

mod access;
mod activities;
mod chaos;
mod cli;
mod clients;
mod contract_features;
mod contract_versions;
mod counter;
mod dashboard;
mod direct;
mod durability;
mod durable_functions;
mod entities;
mod errors;
mod faults;
mod functions_folder;
mod guest_isolation;
mod hosts;
mod instances;
mod limits;
mod logs;
mod management;
mod metrics;
mod openapi;
mod outgoing_http;
mod overload;
mod replay;
mod scaffold;
mod singleton;
mod sub_orchestrations;
mod suspend;
mod timers;
mod traces;
mod versions;
