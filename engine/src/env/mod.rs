//! The environment: the engine's only door to the world (BRIEF §3).
//!
//! Each effect is a small object-safe trait so that one `Env` value can hold either the
//! real implementation (`real`) or a simulated one (the `sim` crate). Async operations
//! return [`BoxFuture`]s because the traits are used as trait objects.

mod clock;
mod disk;
mod net;
mod process;
mod random;
pub mod real;
mod scoped_disk;
mod spawn;

pub use clock::WallClock;
pub use disk::{Disk, DiskFile, FileMeta, OpenMode, check_relative_path};
pub use net::{NetAddr, NetListener, NetStream, Network, Resolved, ResolverId};
pub use process::{
    ChildOutput, ChildProc, ChildStdin, ExitStatus, ProcSpec, ProcessLauncher, Signal,
};
pub use random::{RandomSource, uniform_below};
pub use scoped_disk::ScopedDisk;
pub use spawn::{Admission, Task, TaskGate, TaskGone, spawn_task};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A boxed, sendable future: the return type of the environment's async operations.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The effects one host's engine code may use. Cheap to clone.
#[derive(Clone)]
pub struct Env {
    parts: Arc<EnvParts>,
}

/// The parts an [`Env`] is assembled from: one implementation per effect.
pub struct EnvParts {
    /// Name of the host this environment belongs to (`"engine-0"`, or the machine's name).
    pub host: String,
    pub clock: Arc<dyn WallClock>,
    pub random: Arc<dyn RandomSource>,
    /// The host's task gate; `None` in the real environment, where a host never pauses
    /// or crashes under the engine.
    pub tasks: Option<Arc<dyn TaskGate>>,
    pub net: Arc<dyn Network>,
    pub disk: Arc<dyn Disk>,
    pub procs: Arc<dyn ProcessLauncher>,
}

impl Env {
    pub fn new(parts: EnvParts) -> Self {
        Env {
            parts: Arc::new(parts),
        }
    }

    pub fn host(&self) -> &str {
        &self.parts.host
    }

    /// Wall-clock time (token expiry, event timestamps). Monotonic time and timers come
    /// from `tokio::time`, which is virtual inside a simulated world.
    pub fn wall_now(&self) -> SystemTime {
        self.parts.clock.now()
    }

    /// Milliseconds since the Unix epoch by the wall clock (0 if the clock is before it).
    pub fn wall_unix_ms(&self) -> u64 {
        self.wall_now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64
    }

    /// The same environment with another disk (a child's view of its working directory).
    pub fn with_disk(&self, disk: Arc<dyn Disk>) -> Env {
        let p = &self.parts;
        Env::new(EnvParts {
            host: p.host.clone(),
            clock: p.clock.clone(),
            random: p.random.clone(),
            tasks: p.tasks.clone(),
            net: p.net.clone(),
            disk,
            procs: p.procs.clone(),
        })
    }

    /// The disk as a shared handle (to wrap it).
    pub fn disk_handle(&self) -> Arc<dyn Disk> {
        self.parts.disk.clone()
    }

    pub fn random(&self) -> &dyn RandomSource {
        &*self.parts.random
    }

    pub fn net(&self) -> &dyn Network {
        &*self.parts.net
    }

    pub fn disk(&self) -> &dyn Disk {
        &*self.parts.disk
    }

    pub fn procs(&self) -> &dyn ProcessLauncher {
        &*self.parts.procs
    }

    /// Spawns a task on this host. In a simulated world a crash of the host kills it.
    pub fn spawn<T, F>(&self, name: &'static str, future: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        spawn::spawn_task(self.parts.tasks.as_ref(), name, future)
    }

    /// Waits for the latency the disk charges for one operation (zero for the real disk,
    /// whose latency is real). Call it before a disk operation on an async path.
    pub async fn disk_pace(&self) {
        let delay = self.parts.disk.op_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Creates `dir` and its missing parents, and makes their names durable: each
    /// parent (from the root down) is synced, so a host crash cannot lose a directory
    /// whose files were already synced.
    pub async fn create_dir_all_durable(&self, dir: &str) -> std::io::Result<()> {
        self.disk_pace().await;
        self.disk().create_dir_all(dir)?;
        let mut parent = String::new();
        for name in dir.split('/') {
            self.disk_pace().await;
            self.disk().sync_dir(&parent)?;
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(name);
        }
        Ok(())
    }
}
