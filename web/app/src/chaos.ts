// The operator's chaos console, without the page: the supervisor's console
// API (`/v1/chaos/...`, found through an edge's `drills_url`, called with
// the operator's access token), how often to ask for the live drill, and
// the geometry of the pictures (probe sparklines with their threshold, the
// plan's fault windows on a time axis), so vitest can check them with data.
// The contract is docs/design/chaos.md, "The operator console".

/** A fault of a drill, as the catalogue and the live plan describe it. */
export interface Fault { id: number; kind?: string; label: string; start_ms: number; duration_ms: number }

/** One drill of the catalogue (`runnable: false`: `problems` say why, texts may be empty). */
export interface Drill {
  name: string
  title: string
  hypothesis: string
  duration_ms: number
  settle_ms: number
  faults: Fault[]
  runnable: boolean
  problems: string[]
}

/** One past run, newest first in `GET /v1/chaos/runs`; `id` names its report. */
export interface RunSummary {
  id: string
  drill: string
  title: string
  started_at: string
  hypothesis_held: boolean
  aborted: boolean
  lost: number
  duplicated: number
  recovery_ms: number | null
}

export interface TimelineEntry { at_ms: number; fault: number; label: string; event: string; detail: string | null }
export interface Sample { at_ms: number; value: number }
export interface ProbeSeries { probe: string; threshold: number; samples: Sample[] }
export interface Counters { answered: number; failed: number; skipped: number; in_class: number; failovers: number; reconnects: number }

/** The drill running now, or the last one; with `state: 'idle'` every other field is absent. */
export interface LiveStatus {
  state: string
  drill?: string
  title?: string
  started_at?: string
  elapsed_ms?: number
  end_ms?: number
  plan?: Fault[]
  timeline?: TimelineEntry[]
  probes?: ProbeSeries[]
  counters?: Counters
  aborted?: { at_ms: number; reason: string } | null
  report?: string | null
  hypothesis_held?: boolean | null
  error?: string | null
}

/** States in which a drill is under way: the page asks every second then. */
export const ACTIVE_STATES = ['preparing', 'running', 'checking'] as const
/** Every state the supervisor names; anything else is shown as unknown. */
export const STATES = ['idle', ...ACTIVE_STATES, 'finished', 'failed', 'died'] as const
/** How often the live panel is asked while a drill is under way. */
export const LIVE_POLL_ACTIVE_MS = 1000
/** How often it is asked otherwise (a drill started elsewhere still shows up). */
export const LIVE_POLL_IDLE_MS = 5000

export function isActive(state: string | undefined): boolean {
  return (ACTIVE_STATES as readonly string[]).includes(state ?? '')
}

/** Abort is offered while the runner has faults to heal (or is about to). */
export function canAbort(state: string | undefined): boolean {
  return state === 'preparing' || state === 'running'
}

/** The next live poll's delay for the state last seen (unknown or absent: the slow one). */
export function pollIntervalMs(state: string | undefined): number {
  return isActive(state) ? LIVE_POLL_ACTIVE_MS : LIVE_POLL_IDLE_MS
}

/** `state` when the page knows it, else 'unknown' (for the label; `data-state` keeps the raw one). */
export function knownState(state: string | undefined): string {
  return (STATES as readonly string[]).includes(state ?? '') ? state! : 'unknown'
}

/**
 * The error codes the page puts in words (each has them in every locale):
 * the console API's, and three of the page's own (the supervisor did not
 * answer, answered something unreadable, or the browser blocked the
 * report's tab).
 */
export const ERROR_CODES = [
  'unauthorized', 'forbidden', 'keys_not_loaded', 'unknown_drill', 'unknown_run', 'drill_refused',
  'drill_running', 'no_drill_running', 'bad_request', 'unreachable', 'bad_response', 'popup_blocked',
] as const

export function isKnownError(code: string): boolean {
  return (ERROR_CODES as readonly string[]).includes(code)
}

/** A refusal of the console API: HTTP status (0 when it did not answer), code, message, and a refused drill's problems. */
export class ChaosApiError extends Error {
  constructor(public status: number, public code: string, message: string, public problems: string[] = []) { super(message) }
}

/**
 * The `drills_url` of an edge's `GET /api/v1/node` answer: undefined when
 * drills are off (absent, empty, or not a string).
 */
export function drillsUrlOf(node: unknown): string | undefined {
  const url = (node as { drills_url?: unknown } | null)?.drills_url
  return typeof url === 'string' && url.trim() ? url.trim() : undefined
}

/**
 * The base the `/v1/chaos/...` routes hang from. The supervisor's URL is
 * expected; a trailing slash, `/v1/chaos` or `/v1/chaos/drills` is taken
 * off, so either reading of `drills_url` reaches the same routes.
 */
export function consoleBase(drillsUrl: string): string {
  return drillsUrl.replace(/\/+$/, '').replace(/\/v1\/chaos(\/drills)?$/, '')
}

export type Fetcher = (url: string, init?: RequestInit) => Promise<Response>

/** The supervisor's console API for one operator; `fetcher` is injected for tests. */
export class ChaosApi {
  readonly base: string

  constructor(drillsUrl: string, private token: string, private fetcher: Fetcher = (url, init) => fetch(url, init)) {
    this.base = consoleBase(drillsUrl)
  }

  /** The catalogue, by name. */
  async drills(): Promise<Drill[]> {
    const body = await this.json('/v1/chaos/drills')
    if (!Array.isArray(body?.drills)) throw new ChaosApiError(200, 'bad_response', 'no drills list in the answer')
    return body.drills.map((d: any) => ({ ...d, faults: d.faults ?? [], problems: d.problems ?? [] }))
  }

  /** The newest runs first. */
  async runs(): Promise<RunSummary[]> {
    const body = await this.json('/v1/chaos/runs')
    if (!Array.isArray(body?.runs)) throw new ChaosApiError(200, 'bad_response', 'no runs list in the answer')
    return body.runs
  }

  async live(): Promise<LiveStatus> {
    return this.status(await this.json('/v1/chaos/live'))
  }

  /** Starts `drill` (202); 409 `drill_running`, 422 `drill_refused` with its problems. */
  async start(drill: string): Promise<LiveStatus> {
    return this.status(await this.json('/v1/chaos/runs', { method: 'POST', body: JSON.stringify({ drill }) }))
  }

  /** Interrupts the running drill (it heals, settles, checks and reports); 409 `no_drill_running`. */
  async abort(): Promise<LiveStatus> {
    return this.status(await this.json('/v1/chaos/live/abort', { method: 'POST' }))
  }

  /** A run's report as its self-contained HTML page. */
  async reportHtml(id: string): Promise<string> {
    return (await this.request(`/v1/chaos/runs/${encodeURIComponent(id)}/html`, { headers: { accept: 'text/html' } })).text()
  }

  private status(body: any): LiveStatus {
    if (typeof body?.state !== 'string') throw new ChaosApiError(200, 'bad_response', 'no state in the live status')
    return body
  }

  private async json(path: string, init: RequestInit = {}): Promise<any> {
    const res = await this.request(path, {
      ...init,
      headers: { accept: 'application/json', ...(init.body ? { 'content-type': 'application/json' } : {}) },
    })
    const text = await res.text()
    try {
      return text ? JSON.parse(text) : {}
    } catch {
      throw new ChaosApiError(res.status, 'bad_response', 'the answer is not JSON')
    }
  }

  private async request(path: string, init: RequestInit): Promise<Response> {
    let res: Response
    try {
      res = await this.fetcher(`${this.base}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${this.token}` } })
    } catch (e: any) {
      throw new ChaosApiError(0, 'unreachable', e?.message ?? String(e))
    }
    if (!res.ok) throw await refusal(res)
    return res
  }
}

/** The error of a refused request: `{"error": {"code", "message"}}`, with `problems` in it or beside it. */
async function refusal(res: Response): Promise<ChaosApiError> {
  let body: any
  try { body = JSON.parse(await res.text()) } catch { body = undefined }
  const err = body?.error
  const problems = [err?.problems, body?.problems].find(Array.isArray) ?? []
  return new ChaosApiError(
    res.status,
    typeof err?.code === 'string' ? err.code : 'error',
    typeof err?.message === 'string' ? err.message : res.statusText,
    problems.map(String),
  )
}

/**
 * The policy a report's page is opened under: it is the supervisor's
 * self-contained page (inline CSS and SVG, no script), opened from a Blob
 * URL of the app's origin, so any script in it would run as the app with
 * the operator's token; the policy forbids scripts and every fetch.
 */
export const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

/**
 * A report's HTML with `REPORT_CSP` first in its head; without a head,
 * right after the doctype (a tag before it would put the page in quirks
 * mode), or first of all.
 */
export function reportDocument(html: string): string {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">`
  for (const at of [/<head(\s[^>]*)?>/i, /^\s*<!doctype[^>]*>/i]) {
    const found = at.exec(html)
    if (found) return html.slice(0, found.index + found[0].length) + meta + html.slice(found.index + found[0].length)
  }
  return meta + html
}

/** A ratio probe (0..1, lower is worse) or a latency (higher is worse), from its name. */
export function isRatioProbe(probe: string): boolean {
  return probe.endsWith('_ratio')
}

/** Whether `value` is on the wrong side of the steady-state `threshold`. */
export function breaks(probe: string, value: number, threshold: number): boolean {
  return isRatioProbe(probe) ? value < threshold : value > threshold
}

/** The size of one sparkline's picture, in viewBox units. */
export const SPARK = { width: 240, height: 64, pad: 4 } as const
/** Room left above the highest value or threshold of an open-ended scale. */
const HEADROOM = 0.1

export interface Sparkline {
  viewBox: string
  /** The polyline's points ("x,y x,y"), empty without samples. */
  points: string
  /** The newest sample, marked with a dot (a lone sample draws no line). */
  last?: { x: number; y: number; value: number }
  /** Where the dashed threshold line runs (absent for a threshold that is not a number). */
  thresholdY?: number
  /** The value scale: bottom and top of the plot. */
  lo: number
  hi: number
  /** Fault windows, shaded behind the line, on the same time scale. */
  windows: { x: number; width: number }[]
}

/**
 * A probe's samples as a polyline in a `SPARK`-sized viewBox, time on x
 * (0 to `endMs`, so every chart of a drill lines up with its timeline) and
 * value on y. The scale always holds the threshold, so its line is inside
 * the picture even when every sample is far from it; it starts at 0 (or
 * the lowest value below 0) and ends at `top` when given and nothing is
 * above it (ratios: 1), else 10 % above the highest value or threshold.
 * Samples that are not numbers are left out; all-equal values draw a flat
 * line rather than divide by zero.
 */
export function sparkline(samples: Sample[], threshold: number, endMs: number | undefined, plan: Fault[] = [], top?: number, size: { width: number; height: number; pad: number } = SPARK): Sparkline {
  const kept = samples.filter((s) => Number.isFinite(s.value) && Number.isFinite(s.at_ms)).sort((a, b) => a.at_ms - b.at_ms)
  const values = kept.map((s) => s.value)
  const withThreshold = Number.isFinite(threshold) ? [...values, threshold] : values
  let lo = Math.min(0, ...withThreshold)
  let hi = withThreshold.length ? Math.max(...withThreshold) : (top ?? 1)
  if (top !== undefined && hi <= top) hi = top
  else hi += (hi - lo) * HEADROOM
  if (!(hi > lo)) hi = lo + 1
  const end = axisEnd(endMs, kept.map((s) => s.at_ms))
  const x = scaleX(end, size.width, size.pad, size.pad)
  const plotH = size.height - 2 * size.pad
  const y = (v: number) => round(size.pad + (1 - (v - lo) / (hi - lo)) * plotH)
  const points = kept.map((s) => `${x(s.at_ms)},${y(s.value)}`).join(' ')
  const newest = kept[kept.length - 1]
  return {
    viewBox: `0 0 ${size.width} ${size.height}`,
    points,
    last: newest && { x: x(newest.at_ms), y: y(newest.value), value: newest.value },
    thresholdY: Number.isFinite(threshold) ? y(threshold) : undefined,
    lo,
    hi,
    windows: plan.map((f) => span(f, x)),
  }
}

/** The size of the timeline picture: a lane per fault, the time axis below. */
export const TIMELINE = { width: 600, lane: 18, axis: 18, left: 30, right: 10 } as const

export interface TimelineGeometry {
  viewBox: string
  height: number
  /** Each planned fault's window, one lane each, in the plan's order of ids. */
  bars: { id: number; label: string; x: number; y: number; width: number; height: number }[]
  /** What happened, as ticks on the lane of its fault (events of a fault not in the plan are left out). */
  marks: { x: number; y1: number; y2: number; event: string; fault: number; at_ms: number }[]
  /** Where the drill is now (absent before it started). */
  now?: number
  /** Axis ticks at round times. */
  ticks: { x: number; ms: number }[]
  /** The lanes' top edge and where the axis runs. */
  axisY: number
  end: number
}

/** The plan's windows and the timeline's events on one time axis from 0 to `endMs`. */
export function timelineGeometry(plan: Fault[], timeline: TimelineEntry[], endMs: number | undefined, elapsedMs?: number, size = TIMELINE): TimelineGeometry {
  const faults = [...plan].sort((a, b) => a.id - b.id)
  const end = axisEnd(endMs, [...faults.map((f) => f.start_ms + f.duration_ms), ...timeline.map((e) => e.at_ms), elapsedMs ?? 0])
  const x = scaleX(end, size.width, size.left, size.right)
  const lane = new Map(faults.map((f, i) => [f.id, i]))
  const laneY = (i: number) => i * size.lane
  const axisY = Math.max(1, faults.length) * size.lane
  return {
    viewBox: `0 0 ${size.width} ${axisY + size.axis}`,
    height: axisY + size.axis,
    bars: faults.map((f, i) => ({ id: f.id, label: f.label, ...span(f, x), y: laneY(i) + 3, height: size.lane - 6 })),
    marks: timeline.filter((e) => lane.has(e.fault)).map((e) => ({
      x: x(e.at_ms), y1: laneY(lane.get(e.fault)!) + 1, y2: laneY(lane.get(e.fault)!) + size.lane - 1, event: e.event, fault: e.fault, at_ms: e.at_ms,
    })),
    now: elapsedMs !== undefined && Number.isFinite(elapsedMs) ? x(elapsedMs) : undefined,
    ticks: axisTicks(end).map((ms) => ({ x: x(ms), ms })),
    axisY,
    end,
  }
}

/** Round steps for the time axis, in seconds. */
const TICK_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]

/** Ticks from 0 to `endMs` at the smallest round step that gives at most `most` intervals. */
export function axisTicks(endMs: number, most = 6): number[] {
  if (!(endMs > 0)) return [0]
  const step = (TICK_STEPS_S.find((s) => endMs / (s * 1000) <= most) ?? Math.ceil(endMs / 1000 / most)) * 1000
  const out: number[] = []
  for (let ms = 0; ms <= endMs; ms += step) out.push(ms)
  return out
}

/** The share of the drill done, 0..1 (0 when its end is not known). */
export function progressShare(elapsedMs: number | undefined, endMs: number | undefined): number {
  if (!(endMs !== undefined && endMs > 0) || elapsedMs === undefined || !Number.isFinite(elapsedMs)) return 0
  return Math.min(1, Math.max(0, elapsedMs / endMs))
}

/**
 * A length of time in words of `locale`: "850 ms", "2.5 sec", "1 min 5 sec",
 * "1 hr 2 min"; a dash for none (null, negative, not a number).
 */
export function formatDuration(ms: number | null | undefined, locale: string): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '–'
  if (ms < 1000) return unit(Math.round(ms), 'millisecond', locale, 'short')
  if (ms < 60_000) return unit(ms < 10_000 ? Math.floor(ms / 100) / 10 : Math.floor(ms / 1000), 'second', locale, 'short', 1)
  return minutesAndHours(Math.floor(ms / 1000), locale, 'short')
}

/**
 * A moment on a drill's time axis, to the second and in the narrowest
 * units, so ticks fit: "0s", "45s", "1m 15s" in English.
 */
export function formatOffset(ms: number, locale: string): string {
  if (!Number.isFinite(ms) || ms < 0) return '–'
  const s = Math.round(ms / 1000)
  return s < 60 ? unit(s, 'second', locale, 'narrow') : minutesAndHours(s, locale, 'narrow')
}

function unit(value: number, u: string, locale: string, display: 'short' | 'narrow', digits = 0): string {
  return new Intl.NumberFormat(locale, { style: 'unit', unit: u, unitDisplay: display, maximumFractionDigits: digits }).format(value)
}

/** `seconds` (at least 60) as minutes and seconds, or hours and minutes from an hour on. */
function minutesAndHours(seconds: number, locale: string, display: 'short' | 'narrow'): string {
  const list = (parts: string[]) => new Intl.ListFormat(locale, { type: 'unit', style: 'narrow' }).format(parts)
  if (seconds < 3600) return list([unit(Math.floor(seconds / 60), 'minute', locale, display), ...(seconds % 60 ? [unit(seconds % 60, 'second', locale, display)] : [])])
  const m = Math.floor(seconds / 60)
  return list([unit(Math.floor(m / 60), 'hour', locale, display), ...(m % 60 ? [unit(m % 60, 'minute', locale, display)] : [])])
}

/** A probe's value in its unit: a latency in milliseconds, a ratio as a percentage. */
export function formatProbeValue(probe: string, value: number, locale: string): string {
  if (!Number.isFinite(value)) return '–'
  if (isRatioProbe(probe)) return new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 }).format(value)
  return unit(value, 'millisecond', locale, 'short')
}

/** `started_at` (RFC 3339) in milliseconds, or undefined when it does not parse. */
export function startedMs(startedAt: string | undefined): number | undefined {
  const ms = startedAt ? Date.parse(startedAt) : NaN
  return Number.isFinite(ms) ? ms : undefined
}

/** The end of a time axis: `endMs` when known, else the latest time seen, never 0. */
function axisEnd(endMs: number | undefined, times: number[]): number {
  if (endMs !== undefined && endMs > 0) return endMs
  const latest = Math.max(0, ...times.filter(Number.isFinite))
  return latest > 0 ? latest : 1
}

function scaleX(end: number, width: number, left: number, right: number): (ms: number) => number {
  return (ms) => round(left + Math.min(1, Math.max(0, ms / end)) * (width - left - right))
}

/** A window's left edge and width on the x scale (at least 1 unit, so a short fault stays visible). */
function span(f: Fault, x: (ms: number) => number): { x: number; width: number } {
  const left = x(f.start_ms)
  return { x: left, width: Math.max(1, round(x(f.start_ms + f.duration_ms) - left)) }
}

function round(v: number): number {
  return Math.round(v * 10) / 10
}
