//! Applying and healing a drill's faults against the dev cluster. Process
//! faults (`kill`, `pause`) go through the supervisor's control API
//! (`dev::control`), which carries each fault's deadline, so a runner that
//! dies mid-drill leaves nothing down or stopped past its window; a
//! `sandbox-drain` sets a region's pool targets to 0 with the edge's pool
//! API for the window (`for_ms`), so the edge restores them on its own; a
//! `partition` or a `degrade` (fault API) puts rules on each side's edges
//! through `PUT /api/v1/operator/faults` with a window (`for_ms`), after
//! which the edges clear the rules themselves: a cut both ways, a `drop`
//! of one direction for a one-way partition, a `degrade` of what each side
//! receives (see `network_plan`). Actor sessions follow gossip: they close
//! once gossip holds the other side down, and are not dialled again until
//! it is back. A
//! `database-down` goes through the supervisor too, which makes the
//! control plane's SQLite files immutable (`chattr +i`), or its PostgreSQL
//! database refuse connections, until its deadline. Which
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
            FaultAction::Partition { via, .. } => (*via == Via::Netns).then_some(
                "via = \"netns\" is not performed by this runner (it does not set up network namespaces; use via = \"fault-api\")",
            ),
            FaultAction::Degrade { via, .. } => (*via == Via::Netns).then_some(
                "via = \"netns\" is not performed by this runner (it needs tc netem, which this machine's kernel lacks; use via = \"fault-api\")",
            ),
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
    /// Per region, the fault rules of each applied network fault and when
    /// it ends: an edge's rules are the union over the faults in force.
    cuts: Arc<tokio::sync::Mutex<BTreeMap<String, BTreeMap<u32, Cut>>>>,
}

/// The rules one network fault puts on an edge, until when.
#[derive(Debug, Clone)]
struct Cut {
    rules: Vec<Rule>,
    until: tokio::time::Instant,
}

/// One rule of the edge's fault API, as the runner puts it.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    /// A node id, or [`CONTROL_PLANE_PEER`].
    peer: String,
    what: RuleKind,
    /// `both`, `outbound` or `inbound`.
    direction: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RuleKind {
    Cut,
    Drop,
    Degrade {
        delay_ms: u32,
        jitter_ms: u32,
        loss_percent: f64,
    },
}

impl Rule {
    /// Cuts first, then drops, then degrades: the first rule matching a
    /// packet decides, and the harsher fault should.
    fn rank(&self) -> u8 {
        match self.what {
            RuleKind::Cut => 0,
            RuleKind::Drop => 1,
            RuleKind::Degrade { .. } => 2,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self.what {
            RuleKind::Cut => serde_json::json!({"peer": self.peer, "action": "cut"}),
            RuleKind::Drop => serde_json::json!({
                "peer": self.peer, "action": "drop", "direction": self.direction,
            }),
            RuleKind::Degrade {
                delay_ms,
                jitter_ms,
                loss_percent,
            } => serde_json::json!({
                "peer": self.peer, "action": "degrade", "direction": self.direction,
                "delay_ms": delay_ms, "jitter_ms": jitter_ms, "loss_percent": loss_percent,
            }),
        }
    }
}

/// What one network fault puts on each edge, and its words for the
/// timeline.
struct NetworkPlan {
    rules: Vec<(String, Vec<Rule>)>,
    words: String,
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
                let processes = self.call("database/down", Some(body)).await?;
                let how = processes
                    .database_fault
                    .unwrap_or_else(|| "taken away".to_owned());
                Ok(format!("the control plane's database: {how}"))
            }
            FaultAction::Partition { .. } | FaultAction::Degrade { .. } => {
                let until = tokio::time::Instant::now() + Duration::from_millis(fault.duration_ms);
                let plan = self.network_plan(&fault.action)?;
                let mut cuts = self.cuts.lock().await;
                for (region, rules) in &plan.rules {
                    cuts.entry(region.clone()).or_default().insert(
                        id,
                        Cut {
                            rules: rules.clone(),
                            until,
                        },
                    );
                    self.put_rules(region, cuts.get(region)).await?;
                }
                Ok(plan.words)
            }
        }
    }

    /// The rules a partition or a degrade puts on each edge of either side.
    ///
    /// A partition both ways cuts each side's edges from the other's; one
    /// way (`from` to `to`), `from`'s edges drop what they send to `to`'s
    /// and `to`'s edges drop what they receive from `from`'s, so `to`'s
    /// packets still reach `from`. A degrade both ways puts on each side's
    /// edges a degrade of what they receive from the other side (so each
    /// direction gets the latency once); one way, only on `to`'s edges. A
    /// degrade sits on the receiving side because that is where an actor
    /// session can hold its stream back (`actors::hold`): so the same rule
    /// slows gossip and class relay. The control plane has no rules of its
    /// own: an edge's rule for the
    /// peer `control-plane` acts on its calls to it. A one-way partition
    /// with the control plane on either side cuts that link (a request whose
    /// answer cannot come back fails as a cut does); a degrade puts on the
    /// edge what the control plane's side would have carried too (`both`
    /// for a degrade both ways, `inbound` for one from the control plane).
    fn network_plan(&self, action: &FaultAction) -> Result<NetworkPlan, String> {
        let (link, degrade) = match action {
            FaultAction::Partition { link, .. } => (link, None),
            FaultAction::Degrade {
                link,
                latency_ms,
                jitter_ms,
                loss_percent,
                ..
            } => (
                link,
                Some(RuleKind::Degrade {
                    delay_ms: *latency_ms,
                    jitter_ms: *jitter_ms,
                    loss_percent: *loss_percent,
                }),
            ),
            _ => return Err("not a network fault".to_owned()),
        };
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
        let one_way = link.direction == Direction::OneWay;
        let (from, to) = (regions(&link.from), regions(&link.to));
        let rule = |peer: String, what: RuleKind, direction: &'static str| Rule {
            peer,
            what,
            direction,
        };
        let mut out: Vec<(String, Vec<Rule>)> = Vec::new();
        // (my regions, their regions, the control plane on their side,
        // whether I am the sending side of a one-way fault)
        for (mine, theirs, cp_opposite, sending) in [
            (&from, &to, has_cp(&link.to), true),
            (&to, &from, has_cp(&link.from), false),
        ] {
            for region in mine {
                let mut rules = Vec::new();
                for peer in theirs.iter().map(node) {
                    let peer = peer?;
                    match (degrade, one_way, sending) {
                        (None, false, _) => rules.push(rule(peer, RuleKind::Cut, "both")),
                        (None, true, true) => rules.push(rule(peer, RuleKind::Drop, "outbound")),
                        (None, true, false) => rules.push(rule(peer, RuleKind::Drop, "inbound")),
                        (Some(what), false, _) | (Some(what), true, false) => {
                            rules.push(rule(peer, what, "inbound"));
                        }
                        (Some(_), true, true) => {}
                    }
                }
                if cp_opposite {
                    let cp = CONTROL_PLANE_PEER.to_owned();
                    match (degrade, one_way, sending) {
                        (None, _, _) => rules.push(rule(cp, RuleKind::Cut, "both")),
                        (Some(what), false, _) => rules.push(rule(cp, what, "both")),
                        (Some(what), true, true) => rules.push(rule(cp, what, "outbound")),
                        (Some(what), true, false) => rules.push(rule(cp, what, "inbound")),
                    }
                }
                if !rules.is_empty() {
                    out.push((region.clone(), rules));
                }
            }
        }
        let words = network_words(action, link, &out);
        Ok(NetworkPlan { rules: out, words })
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
        let mut rules: Vec<&Rule> = cuts
            .into_iter()
            .flat_map(|c| c.values())
            .flat_map(|c| &c.rules)
            .collect();
        rules.sort_by(|a, b| {
            (a.rank(), &a.peer, a.direction).cmp(&(b.rank(), &b.peer, b.direction))
        });
        rules.dedup();
        let request = if rules.is_empty() {
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
            let rules: Vec<serde_json::Value> = rules.iter().map(|r| r.to_json()).collect();
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

    async fn clear_pool(&self, edge: &str, language: &str) -> Result<(), String> {
        let request = self
            .http
            .delete(format!("{edge}/api/v1/sandbox/pools/{language}"));
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
                // Clearing the drill's target gives each pool back to its
                // policy (which may want another target than before).
                for (language, _) in &restore {
                    self.clear_pool(&edge, language).await?;
                }
                let what: Vec<String> = restore.iter().map(|(l, _)| l.clone()).collect();
                Ok(format!(
                    "edge-{region} pools back to their policy: {}",
                    what.join(", ")
                ))
            }
            FaultAction::DatabaseDown => {
                self.call("database/up", None).await?;
                Ok("the control plane's database is back".to_owned())
            }
            FaultAction::Partition { .. } | FaultAction::Degrade { .. } => {
                let plan = self.network_plan(&fault.action)?;
                let mut cuts = self.cuts.lock().await;
                for (region, _) in &plan.rules {
                    if let Some(mine) = cuts.get_mut(region) {
                        mine.remove(&id);
                    }
                    self.put_rules(region, cuts.get(region)).await?;
                }
                Ok(format!("healed: {}", plan.words))
            }
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

/// What a network fault does, in words for the timeline.
fn network_words(action: &FaultAction, link: &Link, plan: &[(String, Vec<Rule>)]) -> String {
    let side = |s: &[Endpoint]| {
        s.iter()
            .map(|e| match e {
                Endpoint::Region(r) => r.as_str(),
                Endpoint::ControlPlane => CONTROL_PLANE_PEER,
            })
            .collect::<Vec<_>>()
            .join("+")
    };
    let one_way = link.direction == Direction::OneWay;
    let arrow = if one_way { "->" } else { "<->" };
    let (from, to) = (side(&link.from), side(&link.to));
    let rules: usize = plan.iter().map(|(_, r)| r.len()).sum();
    let cp_cut = plan
        .iter()
        .flat_map(|(_, r)| r)
        .any(|r| r.peer == CONTROL_PLANE_PEER && r.what == RuleKind::Cut);
    let what = match action {
        FaultAction::Degrade {
            latency_ms,
            jitter_ms,
            loss_percent,
            ..
        } => format!(
            "gossip degraded {from} {arrow} {to} by {latency_ms} ms ± {jitter_ms} ms, {loss_percent} % loss"
        ),
        _ if one_way => format!("gossip dropped one way {from} {arrow} {to}"),
        _ => format!("gossip cut between {from} {arrow} {to}"),
    };
    let cp_degraded = plan
        .iter()
        .flat_map(|(_, r)| r)
        .any(|r| r.peer == CONTROL_PLANE_PEER && matches!(r.what, RuleKind::Degrade { .. }));
    let cp = if cp_degraded {
        "; the control plane's link degraded (each call waits before it goes out)"
    } else if cp_cut && one_way {
        "; the control plane's link cut both ways (a request whose answer cannot come back fails as a cut does)"
    } else if cp_cut {
        "; the control plane's link cut"
    } else {
        ""
    };
    format!("{what} ({rules} rules on {} edges){cp}", plan.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use chaos::cluster::{Cluster, Privilege};

    fn cluster_file(supervisor: bool) -> ClusterFile {
        let edge = |region: &str| {
            serde_json::json!({"region": region, "node_id": format!("{region}-1"),
                "url": format!("http://{region}"), "pid": 1, "state": "running"})
        };
        let mut file = serde_json::json!({
            "control_plane": {"url": "http://cp", "pid": 1, "state": "running"},
            "edges": [edge("eu-west"), edge("us-east"), edge("ap-south")],
            "tokens": {"learner": "l", "instructor": "i", "operator": "o"},
        });
        if supervisor {
            file["supervisor"] = serde_json::json!({"url": "http://sup", "key": "k"});
        }
        serde_json::from_value(file).expect("cluster file")
    }

    fn drill(faults: &str) -> Drill {
        let text = format!(
            "title = \"t\"\nhypothesis = \"h\"\nduration_s = 60\nsettle_s = 10\nrecovery_bound_s = 10\n\
             [workload]\nlearners = 1\nclasses = 0\nregions = [\"eu-west\"]\nruns_per_second = 1\n\
             ledger_transfers_per_second = 0\n\
             [probes]\ninterval_ms = 1000\nrun_latency_p99_ms = 1000\nclass_delivery_ratio = 0.9\n\
             class_delivery_within_ms = 1000\nreadiness_ratio = 1.0\n\
             [[fault]]\nstart_s = 10\nduration_s = 20\n{faults}\n"
        );
        let cluster =
            Cluster::new(&["eu-west", "us-east", "ap-south"], Privilege::Root).expect("cluster");
        Drill::parse("d", &text, &cluster).expect("valid drill")
    }

    /// Each edge's rules for the drill's one fault, as the API's JSON.
    fn check(faults: &str, expected: serde_json::Value) {
        let drill = drill(faults);
        let runner = Faults::new(reqwest::Client::new(), &cluster_file(true));
        let plan = runner
            .network_plan(&drill.faults()[0].action)
            .expect("plan");
        let got: serde_json::Map<String, serde_json::Value> = plan
            .rules
            .iter()
            .map(|(region, rules)| {
                let rules = rules.iter().map(Rule::to_json).collect();
                (region.clone(), serde_json::Value::Array(rules))
            })
            .collect();
        assert_eq!(
            serde_json::Value::Object(got),
            expected,
            "{faults}\n{}",
            plan.words
        );
    }

    #[test]
    fn network_faults_become_edge_rules() {
        use serde_json::json;
        check(
            "kind = \"partition\"\nfrom = [\"eu-west\"]\nto = [\"us-east\", \"control-plane\"]",
            json!({
                "eu-west": [
                    {"peer": "us-east-1", "action": "cut"},
                    {"peer": "control-plane", "action": "cut"},
                ],
                "us-east": [{"peer": "eu-west-1", "action": "cut"}],
            }),
        );
        check(
            "kind = \"partition\"\ndirection = \"one-way\"\nfrom = [\"eu-west\"]\nto = [\"us-east\", \"ap-south\"]",
            json!({
                "eu-west": [
                    {"peer": "us-east-1", "action": "drop", "direction": "outbound"},
                    {"peer": "ap-south-1", "action": "drop", "direction": "outbound"},
                ],
                "us-east": [{"peer": "eu-west-1", "action": "drop", "direction": "inbound"}],
                "ap-south": [{"peer": "eu-west-1", "action": "drop", "direction": "inbound"}],
            }),
        );
        check(
            "kind = \"partition\"\ndirection = \"one-way\"\nfrom = [\"control-plane\"]\nto = [\"us-east\"]",
            json!({"us-east": [{"peer": "control-plane", "action": "cut"}]}),
        );
        let degrade = |direction: &str| {
            json!({"action": "degrade", "direction": direction, "delay_ms": 200,
                "jitter_ms": 50, "loss_percent": 5.0})
        };
        let with_peer = |peer: &str, direction: &str| {
            let mut rule = degrade(direction);
            rule["peer"] = json!(peer);
            rule
        };
        let params = "latency_ms = 200\njitter_ms = 50\nloss_percent = 5.0";
        check(
            &format!("kind = \"degrade\"\nfrom = [\"eu-west\"]\nto = [\"ap-south\"]\n{params}"),
            json!({
                "eu-west": [with_peer("ap-south-1", "inbound")],
                "ap-south": [with_peer("eu-west-1", "inbound")],
            }),
        );
        check(
            &format!("kind = \"degrade\"\ndirection = \"one-way\"\nfrom = [\"eu-west\"]\nto = [\"ap-south\"]\n{params}"),
            json!({"ap-south": [with_peer("eu-west-1", "inbound")]}),
        );
        check(
            &format!(
                "kind = \"degrade\"\nfrom = [\"eu-west\"]\nto = [\"control-plane\"]\n{params}"
            ),
            json!({"eu-west": [with_peer("control-plane", "both")]}),
        );
        check(
            &format!("kind = \"degrade\"\ndirection = \"one-way\"\nfrom = [\"control-plane\"]\nto = [\"eu-west\"]\n{params}"),
            json!({"eu-west": [with_peer("control-plane", "inbound")]}),
        );
    }

    #[test]
    fn the_runner_refuses_only_netns_and_supervisor_faults_without_one() {
        let one_way = "kind = \"partition\"\ndirection = \"one-way\"\nfrom = [\"eu-west\"]\nto = [\"us-east\"]";
        let degrade =
            "kind = \"degrade\"\nfrom = [\"eu-west\"]\nto = [\"us-east\"]\nlatency_ms = 5";
        for faults in [one_way, degrade] {
            assert_eq!(
                unsupported(&drill(faults), &cluster_file(false)),
                Vec::<String>::new()
            );
        }
        let netns = format!("{degrade}\nvia = \"netns\"");
        let refused = unsupported(&drill(&netns), &cluster_file(true));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("tc netem"), "{refused:?}");
        // Every drill of the catalogue (slow-link included) validates and
        // runs on a dev cluster with a supervisor.
        let cluster =
            Cluster::new(&["eu-west", "us-east", "ap-south"], Privilege::Root).expect("cluster");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../chaos/drills");
        let catalogue = chaos::catalogue::list(&dir, &cluster).expect("catalogue");
        assert!(catalogue.iter().any(|e| e.path.ends_with("slow-link.toml")));
        for entry in catalogue {
            let drill = entry.drill.expect("valid drill");
            assert_eq!(
                unsupported(&drill, &cluster_file(true)),
                Vec::<String>::new(),
                "{}",
                entry.path.display()
            );
        }
    }
}
