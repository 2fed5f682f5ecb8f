//! Capacity calibration, pure math with no I/O: from measured steps to
//! per-pod capacity, a Universal Scalability Law fit, HPA settings and pool
//! sizes — each number with the measurement and the constraint behind it.
//! Formulas and sources: ../shared/DESIGN.md and TARGETS.md.

pub mod capacity;
pub mod erlang;
pub mod hpa;
pub mod pool;
pub mod usl;
