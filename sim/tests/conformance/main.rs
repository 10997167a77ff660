//! The conformance suite: the same contract tests against the simulated devices and the
//! real environment (real files in a temp dir, real loopback TCP, real child
//! processes), so the simulation is checked against reality.

mod disk;
mod net;
mod procs;

use engine::env::Env;
use engine::env::real::{RealEnvOptions, real_env};
use sim::{WorldOptions, run_world};
use std::future::Future;
use std::pin::Pin;

type Contract = for<'a> fn(&'a Env) -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

fn on_real(contract: Contract) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = {
        let _enter = runtime.enter();
        real_env(RealEnvOptions::loopback(dir.path()))
    };
    if let Err(e) = runtime.block_on(contract(&env)) {
        panic!("real environment breaks the contract: {e}");
    }
}

fn on_sim(contract: Contract, seed: u64) {
    let report = run_world(WorldOptions::new(seed), move |world| async move {
        let host = world.add_host("host-a");
        procs::install_contract_programs(host.procs());
        contract(&host.env()).await
    });
    match report.value {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("simulated environment (seed {seed}) breaks the contract: {e}"),
        Err(abort) => panic!("simulated run (seed {seed}) aborted: {abort:?}"),
    }
}

fn disk(env: &Env) -> Pin<Box<dyn Future<Output = Result<(), String>> + '_>> {
    Box::pin(disk::disk_contract(env))
}

fn net(env: &Env) -> Pin<Box<dyn Future<Output = Result<(), String>> + '_>> {
    Box::pin(net::net_contract(env))
}

fn procs(env: &Env) -> Pin<Box<dyn Future<Output = Result<(), String>> + '_>> {
    Box::pin(procs::procs_contract(env))
}

#[test]
fn disk_contract_holds_for_the_real_disk() {
    on_real(disk);
}

#[test]
fn disk_contract_holds_for_sim_disk() {
    for seed in 1..=3 {
        on_sim(disk, seed);
    }
}

#[test]
fn net_contract_holds_for_real_tcp() {
    on_real(net);
}

#[test]
fn net_contract_holds_for_sim_net() {
    for seed in 1..=3 {
        on_sim(net, seed);
    }
}

#[test]
fn procs_contract_holds_for_real_processes() {
    on_real(procs);
}

#[test]
fn procs_contract_holds_for_sim_procs() {
    for seed in 1..=3 {
        on_sim(procs, seed);
    }
}
