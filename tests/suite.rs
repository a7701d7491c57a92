//! Every integration test suite in one binary (one link instead of one per
//! file): each file of tests/ is a module of it, and `common/` their one
//! harness. Run one suite with `cargo test --test suite NAME::`.

#[path = "accounts.rs"]
mod accounts;
#[path = "admin.rs"]
mod admin;
#[path = "channels.rs"]
mod channels;
#[path = "client.rs"]
mod client;
#[path = "client_clone.rs"]
mod client_clone;
#[path = "client_errors.rs"]
mod client_errors;
#[path = "client_imports.rs"]
mod client_imports;
#[path = "clone.rs"]
mod clone;
#[path = "cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "concat.rs"]
mod concat;
#[path = "crash_completion.rs"]
mod crash_completion;
#[path = "downloads.rs"]
mod downloads;
#[path = "errors_doc.rs"]
mod errors_doc;
#[path = "hardening_domain.rs"]
mod hardening_domain;
#[path = "hardening_http.rs"]
mod hardening_http;
#[path = "hardening_uploads.rs"]
mod hardening_uploads;
#[path = "imgapi.rs"]
mod imgapi_suite;
#[path = "imports.rs"]
mod imports;
#[path = "inprocess.rs"]
mod inprocess;
#[path = "node_client.rs"]
mod node_client;
#[path = "not_available.rs"]
mod not_available;
#[path = "openapi.rs"]
mod openapi;
#[path = "operator.rs"]
mod operator;
#[path = "ops.rs"]
mod ops;
#[path = "readme.rs"]
mod readme;
#[path = "redirect.rs"]
mod redirect;
#[path = "registration.rs"]
mod registration;
#[path = "s3.rs"]
mod s3;
#[path = "space.rs"]
mod space;
#[path = "tus_clients.rs"]
mod tus_clients;
#[path = "uploads.rs"]
mod uploads;
#[path = "validate.rs"]
mod validate;
#[path = "validation_parity.rs"]
mod validation_parity;
