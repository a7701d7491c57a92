//! What imgapi's server and client share, and nothing else: the wire
//! types (`wire`), the tus and checksum header names (`tus`), and the
//! digests of streamed bytes with resumable state (`digest`). It knows no
//! HTTP framework, database or object store.

pub mod digest;
pub mod tus;
pub mod wire;
