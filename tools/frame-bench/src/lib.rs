//! Benchmarks only; see benches/frames.rs.
