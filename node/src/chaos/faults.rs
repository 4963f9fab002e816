//! Applying and healing a drill's faults against the dev cluster. Process
//! faults (`kill`, `pause`) go through the supervisor's control API
//! (`dev::control`), which carries each fault's deadline, so a runner that
//! dies mid-drill leaves nothing down or stopped past its window. Which
//! faults this runner can perform at all is decided before the drill starts
//! (`unsupported`), so a drill never stops half-way on a kind it cannot do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::drill::{Drill, FaultAction, Process};

use super::classes;
use crate::cluster_file::{ClusterFile, SupervisorEntry};
use crate::dev::control::{KillBody, PauseBody, Processes};

/// How long one call to the supervisor may take.
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(10);

/// Why this runner cannot run a drill (it is valid, but asks for something
/// not built yet or not offered by this cluster), one reason a line.
pub(super) fn unsupported(drill: &Drill, cluster: &ClusterFile) -> Vec<String> {
    let mut out = Vec::new();
    for fault in drill.faults() {
        let what = match &fault.action {
            FaultAction::Kill(_) | FaultAction::Pause(_) => {
                if cluster.supervisor.is_none() {
                    Some("the cluster was started with dev.chaos off, so nothing may kill or pause its processes")
                } else {
                    None
                }
            }
            FaultAction::Partition { .. } | FaultAction::Degrade { .. } => {
                Some("network faults are not performed by this runner yet")
            }
            FaultAction::DatabaseDown => Some("database-down is not performed by this runner yet"),
            FaultAction::SandboxDrain(_) => {
                Some("sandbox-drain is not performed by this runner yet")
            }
        };
        if let Some(what) = what {
            out.push(format!(
                "line {}: fault {} ({}): {what}",
                fault.line,
                fault.id,
                fault.label()
            ));
        }
    }
    out
}

/// Applies and heals faults; cheap to clone.
#[derive(Clone)]
pub(super) struct Faults {
    http: reqwest::Client,
    supervisor: Option<SupervisorEntry>,
    /// Node id to region, from `cluster.json`.
    regions: BTreeMap<String, String>,
    /// Where the first class's home is, as its instructor last heard.
    class_home: Option<Arc<classes::Observed>>,
    /// The process each applied fault acted on, so its heal acts on the
    /// same one (a class's home may move in between).
    resolved: Arc<Mutex<BTreeMap<u32, String>>>,
}

impl Faults {
    pub(super) fn new(http: reqwest::Client, cluster: &ClusterFile) -> Self {
        Self {
            http,
            supervisor: cluster.supervisor.clone(),
            regions: cluster
                .edges
                .iter()
                .map(|e| (e.node_id.clone(), e.region.clone()))
                .collect(),
            class_home: None,
            resolved: Arc::default(),
        }
    }

    /// The same, resolving `class-home` targets from the class clients.
    pub(super) fn with_class_home(&self, observed: Arc<classes::Observed>) -> Self {
        Self {
            class_home: Some(observed),
            ..self.clone()
        }
    }

    /// The supervisor's process name for a fault's target, now.
    fn process_name(&self, id: u32, process: &Process) -> Result<String, String> {
        let name = match process {
            Process::Edge(region) => format!("edge-{region}"),
            Process::ControlPlane => "control-plane".to_owned(),
            Process::ClassHome => {
                let node = self
                    .class_home
                    .as_ref()
                    .and_then(|o| o.first_home.lock().ok()?.clone())
                    .ok_or(
                        "the first class's home is not known yet (its instructor has not joined)",
                    )?;
                let region = self.regions.get(&node).ok_or_else(|| {
                    format!("the class's home {node} is not an edge of cluster.json")
                })?;
                format!("edge-{region}")
            }
        };
        if let Ok(mut resolved) = self.resolved.lock() {
            resolved.insert(id, name.clone());
        }
        Ok(name)
    }

    /// The process an applied fault acted on.
    fn applied_to(&self, id: u32, process: &Process) -> Result<String, String> {
        let known = self.resolved.lock().ok().and_then(|r| r.get(&id).cloned());
        match known {
            Some(name) => Ok(name),
            None => self.process_name(id, process),
        }
    }

    /// Applies the fault of `id`; the detail for the timeline, or why not.
    pub(super) async fn apply(&self, drill: &Drill, id: u32) -> Result<String, String> {
        let fault = find(drill, id)?;
        match &fault.action {
            FaultAction::Kill(process) => {
                let name = self.process_name(id, process)?;
                let body = serde_json::to_value(KillBody {
                    down_ms: fault.duration_ms,
                })
                .map_err(|e| e.to_string())?;
                let after = self.call(&format!("{name}/kill"), Some(body)).await?;
                Ok(format!("{name} killed{}", pid_of(&after, &name)))
            }
            FaultAction::Pause(process) => {
                let name = self.process_name(id, process)?;
                let body = serde_json::to_value(PauseBody {
                    for_ms: fault.duration_ms,
                })
                .map_err(|e| e.to_string())?;
                let after = self.call(&format!("{name}/pause"), Some(body)).await?;
                Ok(format!("{name} stopped{}", pid_of(&after, &name)))
            }
            _ => Err(format!("{} is not performed by this runner", fault.kind())),
        }
    }

    /// Heals the fault of `id` (idempotent); the detail, or why not.
    pub(super) async fn heal(&self, drill: &Drill, id: u32) -> Result<String, String> {
        let fault = find(drill, id)?;
        match &fault.action {
            FaultAction::Kill(process) => {
                let name = self.applied_to(id, process)?;
                let after = self.call(&format!("{name}/start"), None).await?;
                Ok(format!("{name} started again{}", pid_of(&after, &name)))
            }
            FaultAction::Pause(process) => {
                let name = self.applied_to(id, process)?;
                self.call(&format!("{name}/resume"), None).await?;
                Ok(format!("{name} continued"))
            }
            _ => Ok("nothing was applied".to_owned()),
        }
    }

    async fn call(&self, path: &str, body: Option<serde_json::Value>) -> Result<Processes, String> {
        let supervisor = self
            .supervisor
            .as_ref()
            .ok_or("the cluster has no supervisor control API (dev.chaos is off)")?;
        let url = format!(
            "{}/v1/processes/{path}",
            supervisor.url.trim_end_matches('/')
        );
        let mut request = self
            .http
            .post(&url)
            .bearer_auth(&supervisor.key)
            .timeout(SUPERVISOR_TIMEOUT);
        request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|err| format!("the supervisor did not answer: {err}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("the supervisor refused: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|err| format!("the supervisor's answer: {err}"))
    }
}

fn find(drill: &Drill, id: u32) -> Result<&chaos::drill::Fault, String> {
    drill
        .faults()
        .iter()
        .find(|f| f.id == id)
        .ok_or_else(|| format!("no fault {id}"))
}

fn pid_of(processes: &Processes, name: &str) -> String {
    processes
        .processes
        .iter()
        .find(|p| p.name == name)
        .map_or_else(String::new, |p| format!(" (pid {})", p.pid))
}
