//! Helpers scenarios share, by the stage they play on (never inside scenario files).

pub mod channel;
pub mod dns;
pub mod egress;
pub mod fail;
pub mod files;
pub mod inputs;
pub mod model;
pub mod plans;
pub mod pool;
pub mod sessions;
pub mod status;
pub mod time;
pub mod tls;
pub mod workers;
