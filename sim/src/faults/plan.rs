//! Fixed fault plans: actions at virtual times, as data (serializable, so a failing
//! run's plan can be saved, shrunk and replayed).

use super::SwarmPlan;
use crate::world::World;
use engine::env::Signal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

pub use crate::net::{DnsFaultKind, PartitionMode};
pub use engine::env::ResolverId;

/// One fault, applied to named hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    Partition {
        a: String,
        b: String,
        mode: PartitionMode,
        #[serde(default)]
        one_way: bool,
    },
    Heal {
        a: String,
        b: String,
    },
    HealAll,
    ResetConnections {
        a: String,
        b: String,
    },
    CrashHost {
        host: String,
    },
    RestartHost {
        host: String,
    },
    PauseHost {
        host: String,
    },
    ResumeHost {
        host: String,
    },
    ClockJump {
        host: String,
        delta_ms: i64,
    },
    ClockDrift {
        host: String,
        ppm: i64,
    },
    DiskCapacity {
        host: String,
        bytes: u64,
    },
    SpawnFail {
        host: String,
        errno: i32,
        count: u32,
    },
    /// Sends `signal` to every live child of `host` (an external OOM killer, a
    /// segfault, an operator's kill), or to those started with argument `with_arg`.
    SignalChildren {
        host: String,
        signal: SignalName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with_arg: Option<String>,
    },
    /// Every live child of `host` (or those started with `with_arg`) stops making
    /// progress until a signal ends it.
    HangChildren {
        host: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with_arg: Option<String>,
    },
    /// Every live child of `host` (or those started with `with_arg`) leaks
    /// `bytes_per_s` of resident memory from now on.
    LeakChildren {
        host: String,
        bytes_per_s: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with_arg: Option<String>,
    },
    /// Every later spawn on `host` starts after a delay uniform in `[min_ms, max_ms]`
    /// (a cold binary, a loaded machine); `0, 0` ends it.
    SlowStarts {
        host: String,
        min_ms: u64,
        max_ms: u64,
    },
    /// Every spawn on `host` fails (`EAGAIN`) until `SpawnRecover`.
    SpawnOutage {
        host: String,
    },
    /// Ends a spawn outage and drops planned spawn failures not yet consumed.
    SpawnRecover {
        host: String,
    },
    /// The disk of `host` keeps `bytes` of room above what is used now (a disk filling
    /// up: a write past it fails with ENOSPC).
    DiskRoom {
        host: String,
        bytes: u64,
    },
    /// One bit of file `path` on `host` flips at rest (bit rot, a bad sector): bit
    /// `bit % 8` of the byte at `offset` modulo the file's length.
    FlipBit {
        host: String,
        path: String,
        offset: u64,
        bit: u8,
    },
    /// File `path` on `host` vanishes (an operator's clean-up, a lost volume).
    RemoveFile {
        host: String,
        path: String,
    },
    /// The disk of `host` loses power while the host stays up: unsynced writes are lost
    /// or torn, open handles go stale (a storage controller's reset, a detached volume).
    DiskPowerCut {
        host: String,
    },
    /// The disk of `host` allows `spare` more open files than are open now (0: every
    /// further open fails with EMFILE); `None` lifts the limit again.
    OpenFilesSpare {
        host: String,
        spare: Option<u32>,
    },
    /// Every read of `host`'s disk flips a bit with probability `rate` (failing
    /// media); a rate of zero ends it.
    DiskRot {
        host: String,
        rate: crate::Ratio,
    },
    /// The operator switches the model API on `host` (`World::install_upstream`) to
    /// `set` for every call until the next switch (a 429 period, a 5xx storm, a slow
    /// model; `serving` ends it).
    UpstreamMode {
        host: String,
        set: crate::upstream::UpstreamMode,
    },
    /// The world's DNS resolver `resolver` fails every question with `fault` (NXDOMAIN,
    /// SERVFAIL, no answer, unreachable) until `DnsRecover` (`sim::net::dns`).
    DnsFault {
        resolver: ResolverId,
        fault: DnsFaultKind,
    },
    /// Resolver `resolver` answers again.
    DnsRecover {
        resolver: ResolverId,
    },
}

/// Signals a plan can send (serializable mirror of `engine::env::Signal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SignalName {
    Sigkill,
    Sigsegv,
    Sigterm,
}

impl From<Signal> for SignalName {
    /// The plan's name of `signal` (any signal a plan cannot send is a SIGKILL).
    fn from(signal: Signal) -> Self {
        match signal {
            Signal::Segv => SignalName::Sigsegv,
            Signal::Term => SignalName::Sigterm,
            _ => SignalName::Sigkill,
        }
    }
}

impl SignalName {
    pub fn signal(self) -> Signal {
        match self {
            SignalName::Sigkill => Signal::Kill,
            SignalName::Sigsegv => Signal::Segv,
            SignalName::Sigterm => Signal::Term,
        }
    }
}

/// A fault at a virtual time (milliseconds since the world started).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultAction {
    /// Milliseconds from the world's start, or from the trigger event when there is one.
    pub at_ms: u64,
    /// The event this action waits for (`World::mark`): the edge case's moment, such
    /// as "mid-answer", rather than a guessed time. `None`: a time from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(flatten)]
    pub fault: Fault,
}

/// One step of a run's workload (what clients and operators do), in the vocabulary of
/// the scenario that declared it (`op`, its own text: the engine VOPR writes JSON). The
/// plan carries the workload so a shrink drops workload steps as it drops faults, and a
/// replay sends exactly the same requests. The world never interprets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStep {
    pub at_ms: u64,
    pub op: String,
}

/// A run's faults: the fixed actions that define an edge case, plus swarm rates; and,
/// for scenarios whose workload is data, the workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub actions: Vec<FaultAction>,
    #[serde(default)]
    pub swarm: SwarmPlan,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload: Vec<WorkloadStep>,
}

impl FaultPlan {
    pub fn at(mut self, at_ms: u64, fault: Fault) -> Self {
        self.actions.push(FaultAction {
            at_ms,
            after: None,
            fault,
        });
        self
    }

    /// Adds `fault`, applied `delay_ms` after the body marks `event` (`World::mark`).
    pub fn after(mut self, event: &str, delay_ms: u64, fault: Fault) -> Self {
        self.actions.push(FaultAction {
            at_ms: delay_ms,
            after: Some(event.to_string()),
            fault,
        });
        self
    }

    /// The plan for people: one line per action in the order they apply, then the swarm.
    pub fn describe(&self) -> Vec<String> {
        let mut actions: Vec<&FaultAction> = self.actions.iter().collect();
        actions.sort_by_key(|a| a.at_ms);
        let mut lines: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        lines.push(self.swarm.to_string());
        let mut steps: Vec<&WorkloadStep> = self.workload.iter().collect();
        steps.sort_by_key(|s| s.at_ms);
        lines.extend(
            steps
                .iter()
                .map(|s| format!("at {} workload {}", format_ms(s.at_ms), s.op)),
        );
        lines
    }

    /// Checks the plan against a world's hosts: every named host exists.
    pub fn validate(&self, hosts: &[String]) -> Result<(), String> {
        for action in &self.actions {
            action
                .fault
                .check_hosts(hosts)
                .map_err(|e| format!("fault at {} ms {e}", action.at_ms))?;
        }
        Ok(())
    }

    /// Applies the swarm rates now and the fixed actions at their times; returns when
    /// the last action has been applied.
    pub async fn execute(&self, world: &World) {
        self.swarm.apply(world);
        let mut actions: Vec<&FaultAction> = self.actions.iter().collect();
        actions.retain(|a| a.after.is_none()); // triggered ones need `World::start_plan`
        actions.sort_by_key(|a| a.at_ms);
        for action in actions {
            let at = Duration::from_millis(action.at_ms);
            let now = Duration::from_nanos(world.now_ns());
            if at > now {
                tokio::time::sleep(at - now).await;
            }
            action.fault.apply(world);
        }
    }
}

/// `1.250s`: a plan's time, to the millisecond.
pub fn format_ms(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

impl fmt::Display for Fault {
    /// One short line: `partition a↔b hold`, `pause server`, `clock jump h -1.500s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition {
                a,
                b,
                mode,
                one_way,
            } => {
                let arrow = if *one_way { "→" } else { "↔" };
                let mode = match mode {
                    PartitionMode::Hold => "hold",
                    PartitionMode::Drop => "drop",
                };
                write!(f, "partition {a}{arrow}{b} {mode}")
            }
            Fault::Heal { a, b } => write!(f, "heal {a}↔{b}"),
            Fault::HealAll => write!(f, "heal all"),
            Fault::ResetConnections { a, b } => write!(f, "reset {a}↔{b}"),
            Fault::CrashHost { host } => write!(f, "crash {host}"),
            Fault::RestartHost { host } => write!(f, "restart {host}"),
            Fault::PauseHost { host } => write!(f, "pause {host}"),
            Fault::ResumeHost { host } => write!(f, "resume {host}"),
            Fault::ClockJump { host, delta_ms } => {
                let sign = if *delta_ms < 0 { "-" } else { "+" };
                write!(
                    f,
                    "clock jump {host} {sign}{}",
                    format_ms(delta_ms.unsigned_abs())
                )
            }
            Fault::ClockDrift { host, ppm } => write!(f, "clock drift {host} {ppm:+} ppm"),
            Fault::DiskCapacity { host, bytes } => {
                write!(f, "disk capacity {host} {bytes} bytes")
            }
            Fault::SpawnFail { host, errno, count } => {
                write!(f, "spawn fail {host} errno {errno} ×{count}")
            }
            Fault::SignalChildren {
                host,
                signal,
                with_arg,
            } => write!(f, "signal {}{signal:?}", children(host, with_arg)),
            Fault::HangChildren { host, with_arg } => {
                write!(f, "hang {}", children(host, with_arg))
            }
            Fault::LeakChildren {
                host,
                bytes_per_s,
                with_arg,
            } => write!(f, "leak {}{bytes_per_s} bytes/s", children(host, with_arg)),
            Fault::SlowStarts {
                host,
                min_ms,
                max_ms,
            } => write!(
                f,
                "slow starts on {host} {}..{}",
                format_ms(*min_ms),
                format_ms(*max_ms)
            ),
            Fault::SpawnOutage { host } => write!(f, "spawn outage on {host}"),
            Fault::SpawnRecover { host } => write!(f, "spawns recover on {host}"),
            Fault::DiskRoom { host, bytes } => write!(f, "disk room {host} {bytes} bytes"),
            Fault::FlipBit {
                host,
                path,
                offset,
                bit,
            } => write!(f, "flip bit {bit} at {offset} of {host}:{path}"),
            Fault::RemoveFile { host, path } => write!(f, "remove {host}:{path}"),
            Fault::DiskPowerCut { host } => write!(f, "power cut of the disk of {host}"),
            Fault::OpenFilesSpare { host, spare } => match spare {
                Some(n) => write!(f, "open files on {host}: {n} more"),
                None => write!(f, "open files on {host}: unlimited"),
            },
            Fault::DiskRot { host, rate } => write!(f, "disk rot on {host} {rate}"),
            Fault::UpstreamMode { host, set } => write!(f, "model API {host} {set:?}"),
            Fault::DnsFault { resolver, fault } => write!(f, "dns {resolver} {fault:?}"),
            Fault::DnsRecover { resolver } => write!(f, "dns {resolver} recovers"),
        }
    }
}

/// Flips bit `bit % 8` of the byte at `offset` modulo the length of `path`; returns
/// that byte's offset.
fn flip_bit(disk: &crate::disk::SimDisk, path: &str, offset: u64, bit: u8) -> std::io::Result<u64> {
    use engine::env::{Disk, OpenMode};
    let file = disk.open(path, OpenMode::ReadWrite)?;
    let len = file.len()?;
    if len == 0 {
        return Err(std::io::Error::other("the file is empty"));
    }
    let at = offset % len;
    let mut byte = [0u8];
    file.read_at(&mut byte, at)?;
    byte[0] ^= 1 << (bit % 8);
    file.write_at(&byte, at)?;
    Ok(at)
}

/// `children of h ` or `children of h with w `: whom a process fault targets.
fn children(host: &str, with_arg: &Option<String>) -> String {
    match with_arg {
        Some(arg) => format!("children of {host} with {arg} "),
        None => format!("children of {host} "),
    }
}

impl fmt::Display for FaultAction {
    /// `at 1.250s partition a↔b drop`, or `0.100s after mid-answer reset a↔b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.after {
            None => write!(f, "at {} {}", format_ms(self.at_ms), self.fault),
            Some(event) => write!(f, "{} after {event} {}", format_ms(self.at_ms), self.fault),
        }
    }
}

impl fmt::Display for SwarmPlan {
    /// `swarm net_reset 1/20, disk_eio 1/1000` (`swarm off` when no kind is on).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rates.is_empty() {
            return write!(f, "swarm off");
        }
        let rates: Vec<String> = self
            .rates
            .iter()
            .map(|(kind, rate)| format!("{} {rate}", kind.name()))
            .collect();
        write!(f, "swarm {}", rates.join(", "))
    }
}

impl Fault {
    /// Checks that every host the fault names is among `hosts`.
    pub fn check_hosts(&self, hosts: &[String]) -> Result<(), String> {
        for host in self.hosts() {
            if !hosts.iter().any(|h| h == host) {
                return Err(format!(
                    "names host {host:?}, which this world does not have (hosts: {})",
                    hosts.join(", ")
                ));
            }
        }
        Ok(())
    }

    pub fn hosts(&self) -> Vec<&str> {
        match self {
            Fault::Partition { a, b, .. }
            | Fault::Heal { a, b }
            | Fault::ResetConnections { a, b } => vec![a, b],
            Fault::HealAll | Fault::DnsFault { .. } | Fault::DnsRecover { .. } => vec![],
            Fault::CrashHost { host }
            | Fault::RestartHost { host }
            | Fault::PauseHost { host }
            | Fault::ResumeHost { host }
            | Fault::ClockJump { host, .. }
            | Fault::ClockDrift { host, .. }
            | Fault::DiskCapacity { host, .. }
            | Fault::SpawnFail { host, .. }
            | Fault::SignalChildren { host, .. }
            | Fault::HangChildren { host, .. }
            | Fault::LeakChildren { host, .. }
            | Fault::SlowStarts { host, .. }
            | Fault::SpawnOutage { host }
            | Fault::SpawnRecover { host }
            | Fault::DiskRoom { host, .. }
            | Fault::FlipBit { host, .. }
            | Fault::RemoveFile { host, .. }
            | Fault::DiskPowerCut { host }
            | Fault::OpenFilesSpare { host, .. }
            | Fault::DiskRot { host, .. }
            | Fault::UpstreamMode { host, .. } => vec![host],
        }
    }

    /// The fault with each `{name}` of its target (a process's argument, a file's path)
    /// replaced by its value in `bindings` (`World::mark_with`).
    pub fn bound(mut self, bindings: &[(&str, &str)]) -> Fault {
        let target = match &mut self {
            Fault::SignalChildren { with_arg, .. }
            | Fault::HangChildren { with_arg, .. }
            | Fault::LeakChildren { with_arg, .. } => with_arg.as_mut(),
            Fault::FlipBit { path, .. } | Fault::RemoveFile { path, .. } => Some(path),
            _ => None,
        };
        if let Some(target) = target {
            for (name, value) in bindings {
                *target = target.replace(&format!("{{{name}}}"), value);
            }
        }
        self
    }

    /// Applies the fault now. Hosts must exist (see `FaultPlan::validate`).
    pub fn apply(&self, world: &World) {
        let host = |name: &str| {
            world
                .host(name)
                .unwrap_or_else(|| panic!("fault names unknown host {name:?}"))
        };
        match self {
            Fault::Partition {
                a,
                b,
                mode,
                one_way,
            } => world.net().partition(a, b, *mode, *one_way),
            Fault::Heal { a, b } => world.net().heal(a, b),
            Fault::HealAll => world.net().heal_all(),
            Fault::ResetConnections { a, b } => {
                world.net().reset_between(a, b);
            }
            Fault::CrashHost { host: name } => host(name).crash(),
            Fault::RestartHost { host: name } => host(name).restart(),
            Fault::PauseHost { host: name } => host(name).pause(),
            Fault::ResumeHost { host: name } => host(name).resume(),
            Fault::ClockJump {
                host: name,
                delta_ms,
            } => {
                host(name).clock().jump(delta_ms.saturating_mul(1_000_000));
                world.faults().for_host(name).fire(
                    "clock.jump",
                    &format!("clock of {name} jumped by {delta_ms} ms"),
                );
            }
            Fault::ClockDrift { host: name, ppm } => {
                host(name).clock().set_drift_ppm(*ppm);
                world
                    .faults()
                    .for_host(name)
                    .fire("clock.drift", &format!("clock of {name} drifts {ppm} ppm"));
            }
            Fault::DiskCapacity { host: name, bytes } => {
                host(name).disk().set_capacity(*bytes);
                tracing::info!(target: "sim::fault", "disk of {name} limited to {bytes} bytes");
            }
            Fault::SpawnFail {
                host: name,
                errno,
                count,
            } => host(name).procs().fail_next_spawn(*errno, *count),
            Fault::SignalChildren {
                host: name,
                signal,
                with_arg,
            } => {
                let host = host(name);
                let procs = host.procs();
                for pid in procs.live_pids_with_arg(with_arg.as_deref()) {
                    procs.kill_with(pid, signal.signal());
                }
            }
            Fault::HangChildren {
                host: name,
                with_arg,
            } => {
                let host = host(name);
                let procs = host.procs();
                for pid in procs.live_pids_with_arg(with_arg.as_deref()) {
                    procs.hang(pid);
                }
            }
            Fault::LeakChildren {
                host: name,
                bytes_per_s,
                with_arg,
            } => {
                let host = host(name);
                let procs = host.procs();
                for pid in procs.live_pids_with_arg(with_arg.as_deref()) {
                    procs.leak(pid, *bytes_per_s);
                }
            }
            Fault::SlowStarts {
                host: name,
                min_ms,
                max_ms,
            } => {
                let host = host(name);
                let procs = host.procs();
                let mut options = procs.options();
                options.start_delay_min = Duration::from_millis(*min_ms);
                options.start_delay_max = Duration::from_millis(*max_ms.max(min_ms));
                procs.set_options(options);
            }
            Fault::SpawnOutage { host: name } => {
                let host = host(name);
                let procs = host.procs();
                let mut options = procs.options();
                options.spawn_fail_rate = crate::Ratio::ONE;
                procs.set_options(options);
            }
            Fault::SpawnRecover { host: name } => {
                let host = host(name);
                let procs = host.procs();
                let mut options = procs.options();
                options.spawn_fail_rate = crate::Ratio::ZERO;
                procs.set_options(options);
                procs.clear_planned_spawn_failures();
            }
            Fault::DiskRoom { host: name, bytes } => {
                let host = host(name);
                let disk = host.disk();
                let capacity = disk.used_bytes().saturating_add(*bytes);
                disk.set_capacity(capacity);
                tracing::info!(target: "sim::fault", "disk of {name} limited to {capacity} bytes ({bytes} free)");
            }
            Fault::FlipBit {
                host: name,
                path,
                offset,
                bit,
            } => {
                let host = host(name);
                match flip_bit(host.disk(), path, *offset, *bit) {
                    Ok(at) => world.faults().for_host(name).fire(
                        "disk.bitflip",
                        &format!(
                            "{name}: bit {} of byte {at} of {path} flipped at rest",
                            bit % 8
                        ),
                    ),
                    Err(e) => tracing::error!(
                        target: "sim::fault",
                        "{name}: no bit of {path} flipped: {e}"
                    ),
                }
            }
            Fault::RemoveFile { host: name, path } => {
                let host = host(name);
                match engine::env::Disk::remove(host.disk(), path) {
                    Ok(()) => world
                        .faults()
                        .for_host(name)
                        .fire("disk.file_removed", &format!("{name}: {path} vanished")),
                    Err(e) => tracing::error!(
                        target: "sim::fault",
                        "{name}: {path} not removed: {e}"
                    ),
                }
            }
            Fault::DiskPowerCut { host: name } => host(name).disk().crash(),
            Fault::OpenFilesSpare { host: name, spare } => {
                let host = host(name);
                let disk = host.disk();
                let mut options = disk.options();
                options.open_files_max = match spare {
                    Some(n) => disk.open_files().saturating_add(*n),
                    None => crate::disk::DiskOptions::quiet().open_files_max,
                };
                disk.set_options(options);
            }
            Fault::DiskRot { host: name, rate } => {
                let host = host(name);
                let disk = host.disk();
                let mut options = disk.options();
                options.bitflip_rate = *rate;
                disk.set_options(options);
            }
            Fault::UpstreamMode { host: name, set } => match world.upstream(name) {
                Some(upstream) => upstream.set_mode(set.clone()),
                None => tracing::error!(
                    target: "sim::fault",
                    "no model API on {name}: mode {set:?} not applied"
                ),
            },
            // Counted by the resolvers per question that meets the fault.
            Fault::DnsFault { resolver, fault } => world.net().dns_fault(*resolver, *fault),
            Fault::DnsRecover { resolver } => world.net().dns_recover(*resolver),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{WorldOptions, run_world};

    fn plan() -> FaultPlan {
        FaultPlan::default()
            .at(
                10,
                Fault::Partition {
                    a: "a".into(),
                    b: "b".into(),
                    mode: PartitionMode::Hold,
                    one_way: true,
                },
            )
            .at(
                5,
                Fault::ClockJump {
                    host: "a".into(),
                    delta_ms: -1_000,
                },
            )
            .at(20, Fault::HealAll)
    }

    #[test]
    fn a_mark_names_the_process_a_plan_targets() {
        let hang = Fault::HangChildren {
            host: "h".into(),
            with_arg: Some("{worker}".into()),
        };
        let bound = hang.clone().bound(&[("worker", "pool-3")]);
        assert_eq!(
            bound,
            Fault::HangChildren {
                host: "h".into(),
                with_arg: Some("pool-3".into()),
            }
        );
        assert_eq!(hang.clone().bound(&[]), hang, "nothing named: unchanged");
    }

    #[test]
    fn plans_are_data_that_round_trip_through_json() {
        let plan = plan();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains(r#""kind":"partition""#), "{json}");
        let back: FaultPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
        let bad = serde_json::from_str::<FaultPlan>(r#"{"actions":[{"at_ms":1,"kind":"meteor"}]}"#);
        assert!(bad.is_err(), "unknown fault kinds are rejected");
    }

    #[test]
    fn dns_faults_are_plan_data() {
        let plan = FaultPlan::default()
            .after(
                "primary-down",
                0,
                Fault::DnsFault {
                    resolver: ResolverId::Primary,
                    fault: DnsFaultKind::Servfail,
                },
            )
            .at(
                5,
                Fault::DnsRecover {
                    resolver: ResolverId::OverHttps,
                },
            );
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            json.contains(r#""kind":"dns_fault","resolver":"primary","fault":"servfail""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<FaultPlan>(&json).unwrap(), plan);
        assert_eq!(
            plan.describe()[..2],
            [
                "0.000s after primary-down dns primary Servfail",
                "at 0.005s dns doh recovers"
            ]
        );
        assert!(plan.validate(&[]).is_ok(), "resolvers are no hosts");
    }

    #[test]
    fn plans_read_one_line_per_action_in_time_order() {
        let mut plan = plan();
        plan.swarm
            .rates
            .insert(crate::faults::SwarmKind::NetReset, crate::Ratio::new(1, 20));
        assert_eq!(
            plan.describe(),
            vec![
                "at 0.005s clock jump a -1.000s",
                "at 0.010s partition a→b hold",
                "at 0.020s heal all",
                "swarm net_reset 1/20",
            ]
        );
        assert_eq!(FaultPlan::default().describe(), vec!["swarm off"]);
    }

    #[test]
    fn validation_names_the_unknown_host() {
        let hosts = vec!["a".to_string()];
        let err = plan().validate(&hosts).unwrap_err();
        assert!(err.contains("\"b\""), "{err}");
        assert!(plan().validate(&["a".into(), "b".into()]).is_ok());
    }

    #[test]
    fn actions_apply_in_time_order_and_count_as_fired() {
        let report = run_world(WorldOptions::new(1), |world| async move {
            world.add_host("a");
            world.add_host("b");
            plan().execute(&world).await;
            world.now_ns()
        });
        assert_eq!(report.value, Ok(20_000_000), "the last action is at 20 ms");
        assert_eq!(report.faults.get("net.partition"), Some(&1));
        assert_eq!(report.faults.get("clock.jump"), Some(&1));
        let order: Vec<&str> = report
            .trace
            .lines
            .iter()
            .filter(|l| l.target == "sim::fault")
            .map(|l| l.message.as_str())
            .collect();
        assert!(order[0].contains("clock of a jumped"), "{order:?}");
        assert!(order[1].contains("partitioned"), "{order:?}");
    }
}
