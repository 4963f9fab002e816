// The operator's fleet view, gathered from the edges themselves: each edge
// answers for its own gossip view, warm pools and abuse events, so the page
// asks every edge it can reach and shows what each one says. An edge that
// does not answer is shown as unreachable rather than hidden.

/** One edge's answers; `error` when it could not be reached. */
export interface EdgeReport {
  url: string
  region: string
  nodeId: string
  members?: { node_id: string; region: string; state: string; http_url: string; generation: number; rtt_ms: number }[]
  pools?: { language: string; warm: number; target: number }[]
  abuse?: { id: string; kind: string; language: string; user_id: string; at: string }[]
  error?: string
}

/** Every edge named by a `/api/v1/regions` answer, once each, sorted by region. */
export function edgesOf(regions: { regions: { region: string; edges: { node_id: string; url: string }[] }[] }): { url: string; region: string; nodeId: string }[] {
  const seen = new Map<string, { url: string; region: string; nodeId: string }>()
  for (const r of regions.regions ?? []) for (const e of r.edges ?? []) if (!seen.has(e.url)) seen.set(e.url, { url: e.url, region: r.region, nodeId: e.node_id })
  return [...seen.values()].sort((a, b) => a.region.localeCompare(b.region) || a.nodeId.localeCompare(b.nodeId))
}

/** Members by state across one view, for the summary line. */
export function countByState(members: { state: string }[]): Record<string, number> {
  const out: Record<string, number> = { alive: 0, suspect: 0, down: 0 }
  for (const m of members) out[m.state] = (out[m.state] ?? 0) + 1
  return out
}
