//! surge's end-to-end tests, as one test binary.
//!
//! Each module is one area (sessions, consistency, chaos, ...) run against
//! the reference cluster on loopback. They share one binary because every
//! test binary links the whole of surge and its dependencies (kube, rustls,
//! goose, plotters): fourteen of them took 1.5 GB of disk and fourteen links
//! per build. Tests that put load on the machine take `common::engine_lock`,
//! so one load runs at a time, as it did when each file was its own process.

mod common;

mod auth;
mod calibrate;
mod chaos;
mod cli;
mod consistency;
mod corpus;
mod e2e;
mod evidence;
mod external;
mod failover;
mod forecast;
mod galera;
mod gate;
mod import;
mod import_har;
mod import_input;
mod isolation;
mod merge_wait;
mod metrics_out;
mod nginx;
mod openfhir;
mod read_replica;
mod readback;
mod reports;
mod scenarios;
mod sessions;
mod shapes;
mod shards;
mod sim;
mod tls;
