// The operator's fleet view, gathered from the edges themselves: each edge
// answers for its own gossip view, warm pools, abuse events and metrics, so
// the page asks every edge it can reach and shows what each one says. An
// edge that does not answer is shown as unreachable rather than hidden.
import { hotShare, perMinute, type Starts } from './metrics'

/** One edge's answers; `error` when it could not be reached. */
export interface EdgeReport {
  url: string
  region: string
  nodeId: string
  members?: { node_id: string; region: string; state: string; http_url: string; generation: number; rtt_ms: number }[]
  pools?: { language: string; warm: number; target: number }[]
  abuse?: { id: string; kind: string; language: string; user_id: string; at: string }[]
  /** Hot and cold starts per language, from the edge's `/metrics`. */
  starts?: Map<string, Starts>
  error?: string
}

/** One language of an edge's pool table. */
export interface PoolRow {
  language: string
  warm: number
  target: number
  hot: number
  cold: number
  /** Hot starts among all starts since the edge started, 0..1; undefined before any. */
  hotShare?: number
  /** Starts per minute, hot and cold, since `baseline` (the page's first reading of the edge). */
  hotPerMinute: number
  coldPerMinute: number
}

/**
 * Pool sizes joined with start counts per language: every pooled language
 * (with zero starts if it had none), then any language that started
 * without a pool. Rates are over `seconds` since `baseline`.
 */
export function poolRows(
  pools: { language: string; warm: number; target: number }[],
  starts: Map<string, Starts> | undefined,
  baseline: Map<string, Starts> | undefined,
  seconds: number,
): PoolRow[] {
  const languages = [...pools.map((p) => p.language), ...[...(starts?.keys() ?? [])].filter((l) => !pools.some((p) => p.language === l)).sort()]
  return languages.map((language) => {
    const pool = pools.find((p) => p.language === language)
    const s = starts?.get(language) ?? { hot: 0, cold: 0 }
    const b = baseline?.get(language) ?? (baseline ? { hot: 0, cold: 0 } : undefined)
    return {
      language,
      warm: pool?.warm ?? 0,
      target: pool?.target ?? 0,
      hot: s.hot,
      cold: s.cold,
      hotShare: hotShare(s),
      hotPerMinute: perMinute(b?.hot, s.hot, seconds),
      coldPerMinute: perMinute(b?.cold, s.cold, seconds),
    }
  })
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
