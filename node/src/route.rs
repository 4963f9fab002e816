//! `lyceum route`: the client side of nearest-region routing, as the web
//! client does it. Ask any node for `/api/v1/regions` (trying the next node
//! when one is down), time round trips from here to every alive edge of
//! each healthy region (`GET /healthz`, fastest of a few), and pick the
//! region with the lowest. A region whose edges do not answer is passed
//! over, so a dead region fails over to the next nearest.

use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::cli::RouteArgs;
use crate::cluster_file::ClusterFile;
use crate::config::Config;

/// One region as measured from here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionRoute {
    /// Region name.
    pub region: String,
    /// Whether the cluster considers it healthy (an alive edge).
    pub healthy: bool,
    /// Its fastest edge from here, when one answered.
    pub url: Option<String>,
    /// Round trip to that edge, fastest probe.
    pub rtt_ms: Option<f64>,
    /// Why it has no figure (unhealthy, or no edge answered).
    pub error: Option<String>,
}

/// The answer of `lyceum route`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// The node that listed the regions.
    pub asked: String,
    /// The nearest healthy region that answered, if any.
    pub chosen: Option<RegionRoute>,
    /// Every region, nearest first, then those without a figure.
    pub regions: Vec<RegionRoute>,
}

/// Where to ask for regions when no `--from` is given.
fn default_sources(config: &Config) -> Vec<String> {
    let path = config.data_dir.join("cluster.json");
    let from_cluster: Vec<String> = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<ClusterFile>(&text).ok())
        .map(|cluster| {
            cluster
                .edges
                .into_iter()
                .filter(|e| e.state == "running")
                .map(|e| e.url)
                .collect()
        })
        .unwrap_or_default();
    if from_cluster.is_empty() {
        vec!["http://127.0.0.1:7401".to_owned()]
    } else {
        from_cluster
    }
}

/// The fastest of `probes` round trips to `url`'s `/healthz`.
async fn probe(client: &reqwest::Client, url: &str, probes: u32) -> Result<f64, String> {
    let mut best: Option<f64> = None;
    let mut last_error = String::new();
    for _ in 0..probes {
        let started = Instant::now();
        match client
            .get(format!("{}/healthz", url.trim_end_matches('/')))
            .send()
            .await
        {
            Ok(answer) if answer.status().is_success() => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                best = Some(best.map_or(ms, |b: f64| b.min(ms)));
            }
            Ok(answer) => last_error = format!("{url}: HTTP {}", answer.status()),
            Err(err) => last_error = format!("{url}: {err}"),
        }
    }
    best.ok_or(last_error)
}

/// Lists regions from the first source that answers, then measures them.
///
/// # Errors
/// When no source answers with a region list.
pub async fn route(
    client: &reqwest::Client,
    sources: &[String],
    probes: u32,
) -> anyhow::Result<Route> {
    let mut failures = Vec::new();
    let mut listed = None;
    for source in sources {
        let url = format!("{}/api/v1/regions", source.trim_end_matches('/'));
        match client.get(&url).send().await {
            Ok(answer) if answer.status().is_success() => match answer.json::<Value>().await {
                Ok(body) => {
                    listed = Some((source.clone(), body));
                    break;
                }
                Err(err) => failures.push(format!("{url}: {err}")),
            },
            Ok(answer) => failures.push(format!("{url}: HTTP {}", answer.status())),
            Err(err) => failures.push(format!("{url}: {err}")),
        }
    }
    let (asked, body) = listed
        .with_context(|| format!("no node answered with the regions: {}", failures.join("; ")))?;
    let mut regions = Vec::new();
    for region in body["regions"].as_array().into_iter().flatten() {
        let name = region["region"].as_str().unwrap_or_default().to_owned();
        let healthy = region["healthy"].as_bool().unwrap_or(false);
        let mut entry = RegionRoute {
            region: name,
            healthy,
            url: None,
            rtt_ms: None,
            error: None,
        };
        if !healthy {
            entry.error = Some("no alive edge in the cluster's view".into());
            regions.push(entry);
            continue;
        }
        let mut errors = Vec::new();
        for edge in region["edges"].as_array().into_iter().flatten() {
            if edge["state"] != "alive" {
                continue;
            }
            let Some(url) = edge["url"].as_str() else {
                continue;
            };
            match probe(client, url, probes).await {
                Ok(ms) if entry.rtt_ms.is_none_or(|best| ms < best) => {
                    entry.rtt_ms = Some(ms);
                    entry.url = Some(url.to_owned());
                }
                Ok(_) => {}
                Err(err) => errors.push(err),
            }
        }
        if entry.rtt_ms.is_none() {
            entry.error = Some(if errors.is_empty() {
                "no alive edge listed".into()
            } else {
                errors.join("; ")
            });
        }
        regions.push(entry);
    }
    regions.sort_by(|a, b| match (a.rtt_ms, b.rtt_ms) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.region.cmp(&b.region),
    });
    let chosen = regions.first().filter(|r| r.rtt_ms.is_some()).cloned();
    Ok(Route {
        asked,
        chosen,
        regions,
    })
}

/// Runs `lyceum route`; returns the exit code.
///
/// # Errors
/// When no node answers with the regions.
pub async fn run(args: &RouteArgs, config: &Config) -> anyhow::Result<u8> {
    let sources = if args.from.is_empty() {
        default_sources(config)
    } else {
        args.from.clone()
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .context("http client")?;
    let route = route(&client, &sources, args.probes).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&route)?);
    } else {
        println!("regions listed by {}", route.asked);
        for r in &route.regions {
            match (r.rtt_ms, &r.url) {
                (Some(ms), Some(url)) => {
                    println!("  {:<12} {:>8.2} ms  {url}", r.region, ms);
                }
                _ => println!(
                    "  {:<12} {:>11}  {}",
                    r.region,
                    "-",
                    r.error.as_deref().unwrap_or("")
                ),
            }
        }
        match &route.chosen {
            Some(r) => println!("nearest: {} ({})", r.region, r.url.as_deref().unwrap_or("")),
            None => println!("nearest: none; no healthy region answered"),
        }
    }
    Ok(if route.chosen.is_some() { 0 } else { 1 })
}
