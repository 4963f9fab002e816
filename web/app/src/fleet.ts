// The operator's fleet view, gathered from the edges themselves: each edge
// answers for its own gossip view, warm pools, abuse events and metrics, so
// the page asks every edge it can reach and shows what each one says. An
// edge that does not answer is shown as unreachable rather than hidden.
// Beside each edge's pools the page draws its region's forecast from the
// control plane, and the edge's own warm size and target on it.
import type { AudioFigures } from './audio-metrics'
import { minuteChart, type MinuteChart, type MinuteForecast } from './forecast'
import { hotShare, perMinute, type Starts } from './metrics'

/** Who set the target a pool warms to now. */
export type TargetSource = 'operator' | 'plan' | 'observed' | 'base'
/** How an edge decides its warm targets. */
export type PoolPolicy = 'fixed' | 'reactive' | 'predictive'

/** One language of `GET /api/v1/sandbox/pools`; the counts are since the edge started. */
export interface PoolStatus {
  language: string
  /** Containers ready now. */
  warm: number
  /** What the pool warms to now, whoever set it. */
  target: number
  /** What the pool's actor wants before the node's budget caps it. */
  wanted: number
  source: TargetSource
  budget_capped: boolean
  /** The plan's target for this minute; null without a plan for it. */
  planned: number | null
  planned_runs_per_minute: number | null
  observed_runs_per_minute: number
  operator_target: number | null
  /** RFC 3339. */
  operator_until: string | null
  hot: number
  cold: number
  /** Containers started warm. */
  warmed: number
  /** Warm containers destroyed without running anything. */
  wasted: number
  used_warm_seconds: number
  wasted_warm_seconds: number
}

/** The node's warm budget: what it may hold and what its pools hold now. */
export interface PoolBudget { containers_max: number; memory_mb_max: number; containers: number; memory_mb: number }

/** The plan the edge keeps from the control plane (times RFC 3339). */
export interface PoolPlanView { generated_at: string | null; from: string | null; minutes: number | null; fetched_at: string | null; last_error: string | null }

/** The answer of `GET /api/v1/sandbox/pools`. */
export interface PoolsAnswer {
  pools: PoolStatus[]
  policy: PoolPolicy
  budget: PoolBudget
  plan: PoolPlanView
}

/** One edge's answers; `error` when it could not be reached. */
export interface EdgeReport {
  url: string
  region: string
  nodeId: string
  members?: { node_id: string; region: string; state: string; http_url: string; generation: number; rtt_ms: number }[]
  pools?: PoolStatus[]
  /** The rest of the pools' answer: the node's policy, budget and plan. */
  pooling?: Omit<PoolsAnswer, 'pools'>
  abuse?: { id: string; kind: string; language: string; user_id: string; at: string }[]
  /** Hot and cold starts per language, from the edge's `/metrics`. */
  starts?: Map<string, Starts>
  /** Live-audio figures from the edge's `/metrics` (see `audio-metrics.ts`); undefined when they did not answer. */
  audio?: AudioFigures
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
  /** The pool's own figures; undefined for a language that started without a pool. */
  wanted?: number
  source?: TargetSource
  budgetCapped?: boolean
  planned?: number | null
  observedPerMinute?: number
  /** When an operator's target ends (unix ms); undefined without one. */
  operatorUntilMs?: number
  warmed?: number
  wasted?: number
  /** Warm time of containers destroyed unused among all warm time, 0..1; undefined before any. */
  wasteShare?: number
}

/** A pool as older edges describe it (sizes only) or as they do now. */
export type PoolInput = Pick<PoolStatus, 'language' | 'warm' | 'target'> & Partial<PoolStatus>

/**
 * Pool sizes joined with start counts per language: every pooled language
 * (with zero starts if it had none), then any language that started
 * without a pool. Rates are over `seconds` since `baseline`.
 */
export function poolRows(
  pools: PoolInput[],
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
      wanted: pool?.wanted,
      source: pool?.source,
      budgetCapped: pool?.budget_capped,
      planned: pool?.planned,
      observedPerMinute: pool?.observed_runs_per_minute,
      operatorUntilMs: timeOf(pool?.operator_until),
      warmed: pool?.warmed,
      wasted: pool?.wasted,
      wasteShare: pool && wasteShare(pool.used_warm_seconds, pool.wasted_warm_seconds),
    }
  })
}

/**
 * Warm time spent on containers destroyed unused among all warm time, 0..1
 * (weighted by time, so a container kept warm all day and thrown away
 * counts more than one that lived a minute); undefined before any warm
 * time, or when the edge does not say.
 */
export function wasteShare(usedSeconds: number | undefined, wastedSeconds: number | undefined): number | undefined {
  const total = (usedSeconds ?? 0) + (wastedSeconds ?? 0)
  return total > 0 ? (wastedSeconds ?? 0) / total : undefined
}

/** A region's forecast for one language, with one edge's warm size and target now. */
export interface PoolChart extends MinuteChart {
  /** The edge's warm containers, at the current minute only (null elsewhere): a marker, not a line. */
  warmNow: (number | null)[]
  /** The edge's target, likewise. */
  targetNow: (number | null)[]
  /** Non-null values across every line and marker, for the page's tests and screen readers. */
  points: number
}

/** The words of a pool chart (its lines and axes), in the page's locale. */
export interface PoolChartText {
  expected: string
  planned: string
  actual: string
  warmTarget: string
  plannedTarget: string
  warmNow: string
  targetNow: string
  runsAxis: string
  containersAxis: string
}

/**
 * The chart of one series (empty without one) and an edge's pool for its
 * language, the pool's figures marked at the current minute: what the edge
 * holds set against what the control plane asked for.
 */
export function poolChart(minutes: MinuteForecast[], nowMs: number, pool?: { warm: number; target: number }): PoolChart {
  const chart = minuteChart(minutes, nowMs)
  const marker = (value: number | undefined) => chart.times.map((_, i) => (i === chart.nowIndex && value !== undefined ? value : null))
  const warmNow = marker(pool?.warm)
  const targetNow = marker(pool?.target)
  const lines = [chart.expected, chart.planned, chart.actual, chart.warmTarget, chart.plannedTarget, warmNow, targetNow]
  const points = lines.reduce((n, line) => n + line.filter((v) => v !== null).length, 0)
  return { ...chart, warmNow, targetNow, points }
}

/** Where an edge's plan stands, times as unix ms. */
export interface PlanStanding {
  /** `none`: no plan yet; `current`: the plan covers now; `expired`: the minutes it covers are over. */
  state: 'none' | 'current' | 'expired'
  generatedMs?: number
  fetchedMs?: number
  /** The end of the minutes it covers. */
  untilMs?: number
  /** Why the last fetch failed, if it did. */
  error?: string
}

/** An RFC 3339 time as unix ms; undefined for none or one that does not parse. */
function timeOf(s: string | null | undefined): number | undefined {
  const ms = s ? Date.parse(s) : NaN
  return Number.isNaN(ms) ? undefined : ms
}

export function planStanding(plan: PoolPlanView | undefined, nowMs: number): PlanStanding {
  const from = timeOf(plan?.from)
  const untilMs = from !== undefined && typeof plan?.minutes === 'number' ? from + plan.minutes * 60_000 : undefined
  const generatedMs = timeOf(plan?.generated_at)
  const state = generatedMs === undefined && untilMs === undefined ? 'none' : untilMs !== undefined && untilMs <= nowMs ? 'expired' : 'current'
  return { state, generatedMs, fetchedMs: timeOf(plan?.fetched_at), untilMs, error: plan?.last_error || undefined }
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
