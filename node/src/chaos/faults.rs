//! Applying and healing a drill's faults against the dev cluster. Process
//! faults (`kill`, `pause`) go through the supervisor's control API
//! (`dev::control`), which carries each fault's deadline, so a runner that
//! dies mid-drill leaves nothing down or stopped past its window; a
//! `sandbox-drain` sets a region's pool targets to 0 with the edge's pool
//! API for the window (`for_ms`), so the edge restores them on its own; a
//! `partition` (fault API, both ways, between regions) cuts each side's
//! gossip with the other's edges through `PUT /api/v1/operator/faults`
//! with a window (`for_ms`), after which the edges clear the rules
//! themselves. Actor sessions follow gossip: they close once gossip holds
//! the other side down, and are not dialled again until it is back. A
//! `database-down` goes through the supervisor too, which makes the
//! control plane's SQLite files immutable (`chattr +i`) until its deadline. Which
//! faults this runner can perform at all is decided before the drill starts
//! (`unsupported`), so a drill never stops half-way on a kind it cannot do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::drill::{Direction, Drill, Endpoint, FaultAction, Link, Process, Via};

use super::classes;
use crate::cluster_file::{ClusterFile, SupervisorEntry};
use crate::control_plane_link::CONTROL_PLANE_PEER;
use crate::dev::control::{KillBody, PauseBody, Processes};

/// How long one call to the supervisor or an edge's pool API may take.
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(10);

/// Why this runner cannot run a drill (it is valid, but asks for something
/// not built yet or not offered by this cluster), one reason a line.
pub(crate) fn unsupported(drill: &Drill, cluster: &ClusterFile) -> Vec<String> {
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
            FaultAction::Partition { link, via } => {
                if *via == Via::Netns {
                    Some("via = \"netns\" is not performed by this runner yet (use the fault API)")
                } else if link.direction == Direction::OneWay {
                    Some("one-way partitions are not performed by this runner yet (the fault API cuts both ways)")
                } else {
                    None
                }
            }
            FaultAction::Degrade { .. } => Some("degrade is not performed by this runner yet"),
            FaultAction::DatabaseDown => cluster.supervisor.is_none().then_some(
                "the cluster was started with dev.chaos off, so nothing may take its database down",
            ),
            FaultAction::SandboxDrain(_) => None,
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

/// Each language's pool target on one edge, as found before a drain.
type PoolTargets = Vec<(String, u64)>;

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
    /// Edge URL per region, from `cluster.json`.
    edges: BTreeMap<String, String>,
    /// The operator's token, for the edges' pool API.
    operator: String,
    /// Per applied `sandbox-drain`, the targets to restore.
    drained: Arc<Mutex<BTreeMap<u32, PoolTargets>>>,
    /// Node id per region, from `cluster.json`.
    nodes: BTreeMap<String, String>,
    /// Per region, the cut peers of each applied partition and when it
    /// ends: an edge's rules are the union over the partitions in force.
    cuts: Arc<tokio::sync::Mutex<BTreeMap<String, BTreeMap<u32, Cut>>>>,
}

/// The peers one partition cuts an edge off from, until when.
#[derive(Debug, Clone)]
struct Cut {
    peers: Vec<String>,
    until: tokio::time::Instant,
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
            edges: cluster
                .edges
                .iter()
                .map(|e| (e.region.clone(), e.url.trim_end_matches('/').to_owned()))
                .collect(),
            operator: cluster.tokens.operator.clone(),
            drained: Arc::default(),
            nodes: cluster
                .edges
                .iter()
                .map(|e| (e.region.clone(), e.node_id.clone()))
                .collect(),
            cuts: Arc::default(),
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
                let after = self
                    .call(&format!("processes/{name}/kill"), Some(body))
                    .await?;
                Ok(format!("{name} killed{}", pid_of(&after, &name)))
            }
            FaultAction::Pause(process) => {
                let name = self.process_name(id, process)?;
                let body = serde_json::to_value(PauseBody {
                    for_ms: fault.duration_ms,
                })
                .map_err(|e| e.to_string())?;
                let after = self
                    .call(&format!("processes/{name}/pause"), Some(body))
                    .await?;
                Ok(format!("{name} stopped{}", pid_of(&after, &name)))
            }
            FaultAction::SandboxDrain(region) => {
                let edge = self.edge(region)?;
                let pools = self.pools(&edge).await?;
                let mut restore = Vec::new();
                for (language, target) in &pools {
                    let body = serde_json::json!({"target": 0, "for_ms": fault.duration_ms});
                    self.put_pool(&edge, language, &body).await?;
                    restore.push((language.clone(), *target));
                    if let Ok(mut drained) = self.drained.lock() {
                        drained.insert(id, restore.clone());
                    }
                }
                let what: Vec<String> = pools.iter().map(|(l, t)| format!("{l} {t}->0")).collect();
                Ok(format!("edge-{region} pools drained: {}", what.join(", ")))
            }
            FaultAction::DatabaseDown => {
                let body = serde_json::json!({"for_ms": fault.duration_ms});
                self.call("database/down", Some(body)).await?;
                Ok("the control plane's SQLite files made unwritable (chattr +i)".to_owned())
            }
            FaultAction::Partition { link, .. } => {
                let until = tokio::time::Instant::now() + Duration::from_millis(fault.duration_ms);
                let sides = self.sides(link)?;
                let mut cuts = self.cuts.lock().await;
                for (region, peers) in &sides {
                    cuts.entry(region.clone()).or_default().insert(
                        id,
                        Cut {
                            peers: peers.clone(),
                            until,
                        },
                    );
                    self.put_rules(region, cuts.get(region)).await?;
                }
                Ok(format!("gossip cut between {}", link_words(&sides)))
            }
            _ => Err(format!("{} is not performed by this runner", fault.kind())),
        }
    }

    /// For each region on either side, the node ids it is cut off from.
    fn sides(&self, link: &Link) -> Result<Vec<(String, Vec<String>)>, String> {
        let regions = |side: &[Endpoint]| -> Vec<String> {
            side.iter()
                .filter_map(|e| match e {
                    Endpoint::Region(r) => Some(r.clone()),
                    Endpoint::ControlPlane => None,
                })
                .collect()
        };
        let node = |region: &String| {
            self.nodes
                .get(region)
                .cloned()
                .ok_or_else(|| format!("no edge of region {region} in cluster.json"))
        };
        let has_cp = |side: &[Endpoint]| side.contains(&Endpoint::ControlPlane);
        let (from, to) = (regions(&link.from), regions(&link.to));
        let mut out = Vec::new();
        for ((mine, theirs), cp_opposite) in [
            ((&from, &to), has_cp(&link.to)),
            ((&to, &from), has_cp(&link.from)),
        ] {
            for region in mine {
                let mut peers = theirs.iter().map(node).collect::<Result<Vec<_>, _>>()?;
                // The control plane has no rules of its own: cutting the
                // edge's calls to it cuts the link (it never calls edges).
                if cp_opposite {
                    peers.push(CONTROL_PLANE_PEER.to_owned());
                }
                out.push((region.clone(), peers));
            }
        }
        Ok(out)
    }

    /// Puts the union of `cuts` as the region's edge's rules, with the
    /// latest end as their window (or clears them when none is left).
    async fn put_rules(
        &self,
        region: &str,
        cuts: Option<&BTreeMap<u32, Cut>>,
    ) -> Result<(), String> {
        let edge = self.edge(region)?;
        let now = tokio::time::Instant::now();
        let mut peers: Vec<&String> = cuts
            .into_iter()
            .flat_map(|c| c.values())
            .flat_map(|c| &c.peers)
            .collect();
        peers.sort();
        peers.dedup();
        let request = if peers.is_empty() {
            self.http.delete(format!("{edge}/api/v1/operator/faults"))
        } else {
            let until = cuts
                .into_iter()
                .flat_map(|c| c.values())
                .map(|c| c.until)
                .max()
                .unwrap_or(now);
            let for_ms = u64::try_from(until.saturating_duration_since(now).as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let rules: Vec<serde_json::Value> = peers
                .iter()
                .map(|p| serde_json::json!({"peer": p, "action": "cut"}))
                .collect();
            self.http
                .put(format!("{edge}/api/v1/operator/faults"))
                .json(&serde_json::json!({"rules": rules, "for_ms": for_ms}))
        };
        send(request, &self.operator, &format!("edge-{region}"))
            .await
            .map(drop)
    }

    fn edge(&self, region: &str) -> Result<String, String> {
        self.edges
            .get(region)
            .cloned()
            .ok_or_else(|| format!("no edge of region {region} in cluster.json"))
    }

    /// Each language's pool target on `edge`.
    async fn pools(&self, edge: &str) -> Result<PoolTargets, String> {
        let request = self.http.get(format!("{edge}/api/v1/sandbox/pools"));
        let text = send(request, &self.operator, "the edge").await?;
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(body["pools"]
            .as_array()
            .map(|pools| {
                pools
                    .iter()
                    .filter_map(|p| {
                        Some((p["language"].as_str()?.to_owned(), p["target"].as_u64()?))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn put_pool(
        &self,
        edge: &str,
        language: &str,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        let request = self
            .http
            .put(format!("{edge}/api/v1/sandbox/pools/{language}"))
            .json(body);
        send(request, &self.operator, "the edge").await.map(drop)
    }

    /// Heals the fault of `id` (idempotent); the detail, or why not.
    pub(super) async fn heal(&self, drill: &Drill, id: u32) -> Result<String, String> {
        let fault = find(drill, id)?;
        match &fault.action {
            FaultAction::Kill(process) => {
                let name = self.applied_to(id, process)?;
                let after = self.call(&format!("processes/{name}/start"), None).await?;
                Ok(format!("{name} started again{}", pid_of(&after, &name)))
            }
            FaultAction::Pause(process) => {
                let name = self.applied_to(id, process)?;
                self.call(&format!("processes/{name}/resume"), None).await?;
                Ok(format!("{name} continued"))
            }
            FaultAction::SandboxDrain(region) => {
                let edge = self.edge(region)?;
                let restore = self
                    .drained
                    .lock()
                    .ok()
                    .and_then(|mut d| d.remove(&id))
                    .unwrap_or_default();
                for (language, target) in &restore {
                    self.put_pool(&edge, language, &serde_json::json!({"target": target}))
                        .await?;
                }
                let what: Vec<String> = restore.iter().map(|(l, t)| format!("{l} {t}")).collect();
                Ok(format!("edge-{region} pools restored: {}", what.join(", ")))
            }
            FaultAction::DatabaseDown => {
                self.call("database/up", None).await?;
                Ok("the control plane's database writable again".to_owned())
            }
            FaultAction::Partition { link, .. } => {
                let sides = self.sides(link)?;
                let mut cuts = self.cuts.lock().await;
                for (region, _) in &sides {
                    if let Some(mine) = cuts.get_mut(region) {
                        mine.remove(&id);
                    }
                    self.put_rules(region, cuts.get(region)).await?;
                }
                Ok(format!("gossip between {} whole again", link_words(&sides)))
            }
            _ => Ok("nothing was applied".to_owned()),
        }
    }

    async fn call(&self, path: &str, body: Option<serde_json::Value>) -> Result<Processes, String> {
        let supervisor = self
            .supervisor
            .as_ref()
            .ok_or("the cluster has no supervisor control API (dev.chaos is off)")?;
        let url = format!("{}/v1/{path}", supervisor.url.trim_end_matches('/'));
        let mut request = self.http.post(&url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let text = send(request, &supervisor.key, "the supervisor").await?;
        serde_json::from_str(&text).map_err(|err| format!("the supervisor's answer: {err}"))
    }
}

/// Sends `request` with `key` within [`SUPERVISOR_TIMEOUT`]; the answer's
/// text, or why not in words naming `who`.
async fn send(request: reqwest::RequestBuilder, key: &str, who: &str) -> Result<String, String> {
    let answer = request
        .bearer_auth(key)
        .timeout(SUPERVISOR_TIMEOUT)
        .send()
        .await
        .map_err(|err| format!("{who} did not answer: {err}"))?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{who} refused: {status} {text}"))
    }
}

/// The regions a partition cuts, in words.
fn link_words(sides: &[(String, Vec<String>)]) -> String {
    let regions: Vec<&str> = sides.iter().map(|(r, _)| r.as_str()).collect();
    let cp = sides
        .iter()
        .any(|(_, peers)| peers.iter().any(|p| p == CONTROL_PLANE_PEER));
    format!(
        "{}{}",
        regions.join(", "),
        if cp { " and the control plane" } else { "" }
    )
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
