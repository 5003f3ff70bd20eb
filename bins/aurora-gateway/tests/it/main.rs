//! The gateway's integration tests, one test binary (one link instead of one per file): the HTTP
//! surface of each provider against the embedded default and the real servers, faults, several
//! replicas and processes, the lifecycle, webhooks and the real binary.

#[macro_use]
mod common;

mod api;
mod aws;
mod azure;
mod binary;
mod faults;
mod frontend;
mod gcp;
mod hardening;
mod lifecycle;
mod orphans;
mod processes;
mod replicas;
mod tailscale;
mod webhooks;
