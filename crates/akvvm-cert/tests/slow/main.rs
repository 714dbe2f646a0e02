//! akvvm-cert's slow tests, a target of their own that `cargo test --workspace` leaves out and
//! `scripts/test` runs (`cargo test -p akvvm-cert --test slow`): the store's work per install,
//! counted in stores of 10 and of 1,000 certificates (`store_work`).

mod store_work;
