// The edges' Prometheus metrics, read by the operator's fleet page straight
// from each edge's `/metrics` (the text format Prometheus itself scrapes, so
// the page and a Prometheus server see the same figures). A tiny parser for
// the sample lines, histograms summed across series, per-interval deltas,
// and percentiles interpolated within buckets the way Prometheus's
// `histogram_quantile` does.

/** One sample line: `name{label="value",...} value [timestamp]`. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses the sample lines of the Prometheus text format; comments, blank and malformed lines are skipped. */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const sample = parseLine(line)
    if (sample) out.push(sample)
  }
  return out
}

function parseLine(line: string): Sample | undefined {
  let i = 0
  while (i < line.length && /[A-Za-z0-9_:]/.test(line[i])) i++
  const name = line.slice(0, i)
  if (!name) return undefined
  const labels: Record<string, string> = {}
  if (line[i] === '{') {
    i++
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++
      if (line[i] === '}') { i++; break }
      const eq = line.indexOf('=', i)
      if (eq < 0 || line[eq + 1] !== '"') return undefined
      const key = line.slice(i, eq).trim()
      let value = ''
      let j = eq + 2
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) {
          j++
          value += line[j] === 'n' ? '\n' : line[j]
        } else value += line[j]
      }
      if (j >= line.length) return undefined
      labels[key] = value
      i = j + 1
    }
  }
  const [number] = line.slice(i).trim().split(/\s+/)
  const value = parseValue(number)
  return value === undefined ? undefined : { name, labels, value }
}

function parseValue(text: string | undefined): number | undefined {
  if (text === '+Inf' || text === 'Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  if (!text) return undefined
  const n = Number(text)
  return Number.isNaN(n) ? undefined : n
}

/** A cumulative histogram: `buckets` as [upper bound, count at or below it], ascending, the last bound +Inf. */
export interface Histogram {
  buckets: [number, number][]
  count: number
  sum: number
}

/**
 * The histogram `name` (without `_bucket`), summed over every series whose
 * labels pass `keep` (e.g. every route, or one language).
 */
export function histogramOf(samples: Sample[], name: string, keep: (labels: Record<string, string>) => boolean = () => true): Histogram {
  const byBound = new Map<number, number>()
  let count = 0
  let sum = 0
  for (const s of samples) {
    if (!keep(s.labels)) continue
    if (s.name === `${name}_bucket`) {
      const le = parseValue(s.labels.le)
      if (le !== undefined) byBound.set(le, (byBound.get(le) ?? 0) + s.value)
    } else if (s.name === `${name}_count`) count += s.value
    else if (s.name === `${name}_sum`) sum += s.value
  }
  const buckets = [...byBound.entries()].sort((a, b) => a[0] - b[0])
  return { buckets, count, sum }
}

/**
 * What was observed between two readings of one histogram. A process that
 * restarted in between counts from zero again, so then `cur` itself is the
 * interval; bounds missing from `prev` count as zero there.
 */
export function deltaHistogram(prev: Histogram | undefined, cur: Histogram): Histogram {
  if (!prev || cur.count < prev.count) return cur
  const before = new Map(prev.buckets)
  return {
    buckets: cur.buckets.map(([le, n]) => [le, Math.max(0, n - (before.get(le) ?? 0))]),
    count: cur.count - prev.count,
    sum: cur.sum - prev.sum,
  }
}

/**
 * The `q` quantile (0..1) of a histogram, linearly interpolated within its
 * bucket (from 0 for the first); in the +Inf bucket the highest finite bound.
 * Undefined when nothing was observed.
 */
export function quantile(h: Histogram, q: number): number | undefined {
  if (h.count <= 0 || h.buckets.length === 0) return undefined
  const rank = q * h.count
  let lower = 0
  let below = 0
  for (const [le, n] of h.buckets) {
    if (n >= rank && n > below) {
      if (!Number.isFinite(le)) return lower
      return lower + (le - lower) * ((rank - below) / (n - below))
    }
    if (Number.isFinite(le)) lower = le
    below = n
  }
  return lower
}

/** Mean of the observations, undefined when there were none. */
export function mean(h: Histogram): number | undefined {
  return h.count > 0 ? h.sum / h.count : undefined
}

/** Runs by how their container was had, per language. */
export interface Starts { hot: number; cold: number }

/** `lyceum_sandbox_starts_total{language,kind}` by language. */
export function startsOf(samples: Sample[]): Map<string, Starts> {
  const out = new Map<string, Starts>()
  for (const s of samples) {
    if (s.name !== STARTS) continue
    const lang = s.labels.language ?? ''
    const row = out.get(lang) ?? { hot: 0, cold: 0 }
    if (s.labels.kind === 'hot') row.hot += s.value
    else if (s.labels.kind === 'cold') row.cold += s.value
    out.set(lang, row)
  }
  return out
}

/** The share of starts that were hot, 0..1; undefined before any start. */
export function hotShare(s: Starts): number | undefined {
  const total = s.hot + s.cold
  return total > 0 ? s.hot / total : undefined
}

/** Starts per minute between two readings `seconds` apart (zero after a restart or with no time). */
export function perMinute(prev: number | undefined, cur: number, seconds: number): number {
  if (prev === undefined || cur < prev || seconds <= 0) return 0
  return ((cur - prev) * 60) / seconds
}

export const HTTP_LATENCY = 'lyceum_http_request_duration_seconds'
export const RUN_LATENCY = 'lyceum_sandbox_run_seconds'
export const STARTS = 'lyceum_sandbox_starts_total'

/** One edge's figures for one interval, in milliseconds; null when nothing was observed. */
export interface IntervalPoint { p50: number | null; p95: number | null }

function point(h: Histogram): IntervalPoint {
  const ms = (s: number | undefined) => (s === undefined ? null : Math.round(s * 10000) / 10)
  return { p50: ms(quantile(h, 0.5)), p95: ms(quantile(h, 0.95)) }
}

/** The charts' data: one label per reading and, per edge and figure, a value or null per label. */
export interface LatencySeries {
  labels: number[]
  edges: Map<string, { http: IntervalPoint[]; run: IntervalPoint[] }>
}

/**
 * Folds successive readings of every edge's metrics into per-interval
 * request and run latency percentiles, keeping the last `max` intervals.
 * The first reading of an edge only sets its baseline; an edge that gave
 * no reading this time gets nulls (a gap in its line).
 */
export class LatencyTracker {
  readonly series: LatencySeries = { labels: [], edges: new Map() }
  private last = new Map<string, { http: Histogram; run: Histogram }>()
  constructor(private readonly max = 40) {}

  /** Adds one reading taken at `at` (ms): each edge's parsed samples, or undefined when it did not answer. */
  add(at: number, readings: Map<string, Sample[] | undefined>): void {
    const points = new Map<string, { http: IntervalPoint; run: IntervalPoint }>()
    let any = false
    for (const [edge, samples] of readings) {
      if (!samples) { this.last.delete(edge); continue }
      const cur = { http: histogramOf(samples, HTTP_LATENCY), run: histogramOf(samples, RUN_LATENCY) }
      const prev = this.last.get(edge)
      this.last.set(edge, cur)
      if (!prev) continue
      points.set(edge, { http: point(deltaHistogram(prev.http, cur.http)), run: point(deltaHistogram(prev.run, cur.run)) })
      any = true
    }
    if (!any) return
    const empty: IntervalPoint = { p50: null, p95: null }
    const length = this.series.labels.length
    for (const edge of points.keys()) {
      if (!this.series.edges.has(edge)) {
        this.series.edges.set(edge, { http: Array(length).fill(empty), run: Array(length).fill(empty) })
      }
    }
    this.series.labels.push(at)
    for (const [edge, s] of this.series.edges) {
      const p = points.get(edge)
      s.http.push(p?.http ?? empty)
      s.run.push(p?.run ?? empty)
    }
    if (this.series.labels.length > this.max) {
      const drop = this.series.labels.length - this.max
      this.series.labels.splice(0, drop)
      for (const s of this.series.edges.values()) { s.http.splice(0, drop); s.run.splice(0, drop) }
    }
  }
}
