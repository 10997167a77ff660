//! Helpers scenarios share, by the stage they play on (never inside scenario files).

pub mod channel;
pub mod fail;
pub mod plans;
pub mod workers;
