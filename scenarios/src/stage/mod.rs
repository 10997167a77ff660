mod sim_worker;
pub use sim_worker::install_worker;
