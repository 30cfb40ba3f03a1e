//! pbn's single integration-test binary: every module below runs against real nats-servers
//! started by the `support` harness. Add a test module by adding one `mod` line.

mod support;

mod browser;
mod callout;
mod cli;
mod clients;
mod cluster;
mod connection;
mod console;
mod http_api;
mod lifecycle;
mod memory;
mod oidc;
mod operator;
mod publisher;
mod replica;
mod service;
mod smoke;
