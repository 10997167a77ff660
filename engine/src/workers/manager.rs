//! The registry of named workers: register, start, stop, health, list, get.
//!
//! The map sits behind a read-write lock: lookups (health checks, starts, lists) share
//! it, registrations take it briefly. No lock is held across a worker's own start or
//! stop, so a slow start never blocks health checks of other workers, or of itself.

use super::WorkerError;
use super::config::{PortRange, WorkerConfig};
use super::name::{shorten, validate_name};
use super::ports::PortAllocator;
use super::reaper::Reaper;
use super::worker::{Health, Worker, WorkerInfo};
use crate::env::{Env, Task};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::RwLock;

pub struct WorkerManager {
    env: Env,
    workers: RwLock<BTreeMap<String, Arc<Worker>>>,
    reaper: Arc<Reaper>,
    ports: Arc<PortAllocator>,
    watchdog: Mutex<Option<Task<()>>>,
}

impl WorkerManager {
    pub fn new(env: Env, ports: PortRange) -> Self {
        WorkerManager {
            env,
            workers: RwLock::new(BTreeMap::new()),
            reaper: Arc::new(Reaper::new()),
            ports: Arc::new(PortAllocator::new(ports)),
            watchdog: Mutex::new(None),
        }
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn reaper(&self) -> &Reaper {
        &self.reaper
    }

    /// Starts the zombie watchdog: every `interval` it reaps the children the
    /// supervisor gave up on. Calling it again replaces the running watchdog.
    pub fn start_watchdog(&self, interval: Duration) {
        assert!(!interval.is_zero(), "watchdog interval must be positive");
        let reaper = self.reaper.clone();
        let task = self.env.spawn("worker-reaper", async move {
            loop {
                tokio::time::sleep(interval).await;
                let reaped = reaper.sweep();
                if !reaped.is_empty() {
                    tracing::warn!(count = reaped.len(), "watchdog reaped zombies");
                }
            }
        });
        if let Some(old) = self.watchdog.lock().expect("poisoned").replace(task) {
            old.abort();
        }
    }

    /// Registers `name`; a second registration under the same name replaces the first
    /// (last write wins) and the replaced worker's process is killed and reaped.
    pub async fn register(&self, name: &str, config: WorkerConfig) -> Result<(), WorkerError> {
        validate_name(name)?;
        let worker = Arc::new(Worker::new(
            name.to_string(),
            self.env.clone(),
            config,
            self.reaper.clone(),
            self.ports.clone(),
        ));
        let replaced = self.workers.write().await.insert(name.to_string(), worker);
        if replaced.is_some() {
            tracing::warn!(worker = %shorten(name), "registered again: the new registration replaces the old");
        } else {
            tracing::info!(worker = %shorten(name), "registered");
        }
        Ok(())
    }

    /// Removes `name`, stopping its worker gracefully first.
    pub async fn unregister(&self, name: &str) -> Result<(), WorkerError> {
        let worker = self.worker(name).await?;
        worker.stop().await?;
        self.workers.write().await.remove(name);
        Ok(())
    }

    /// The worker registered as `name`.
    pub async fn worker(&self, name: &str) -> Result<Arc<Worker>, WorkerError> {
        self.workers
            .read()
            .await
            .get(name)
            .cloned()
            .ok_or_else(|| WorkerError::NotRegistered {
                name: shorten(name),
            })
    }

    pub async fn start(&self, name: &str) -> Result<(), WorkerError> {
        self.worker(name).await?.start().await
    }

    pub async fn stop(&self, name: &str) -> Result<(), WorkerError> {
        self.worker(name).await?.stop().await
    }

    pub async fn health(&self, name: &str) -> Result<Health, WorkerError> {
        Ok(self.worker(name).await?.health().await)
    }

    pub async fn get(&self, name: &str) -> Option<WorkerInfo> {
        self.workers.read().await.get(name).map(|w| w.info())
    }

    /// Every worker, by name.
    pub async fn list(&self) -> Vec<WorkerInfo> {
        self.workers
            .read()
            .await
            .values()
            .map(|w| w.info())
            .collect()
    }

    /// Stops every worker (in name order).
    pub async fn stop_all(&self) {
        let workers: Vec<Arc<Worker>> = self.workers.read().await.values().cloned().collect();
        for worker in workers {
            if let Err(e) = worker.stop().await {
                tracing::warn!(worker = %shorten(worker.name()), error = %e, "stop failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manager is shared between tasks and threads (catalog pattern.6.1).
    #[test]
    fn the_manager_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<WorkerManager>();
        shared::<Arc<Worker>>();
    }
}
