//! Pi engines measured beside the one pi-ring ships
//! ([`pi_ring::pi::fraction_digits`]) by `pi-ring-bench --only pi`.

pub mod malachite;
