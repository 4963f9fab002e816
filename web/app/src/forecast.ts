// The forecast page's arithmetic, kept out of the page so it is tested: the
// next week's window as the control plane accepts it, the regions an answer
// names, and the downsampling of a week of minutes (10,080 points per
// series, too many to draw) to one point per hour that keeps each hour's
// highest minute, so a burst of one minute stays visible.

/** One minute of a series (`MinuteForecast` of `GET /api/v1/forecast`). */
export interface MinuteForecast {
  /** The minute's start, RFC 3339 UTC. */
  at: string
  planned_runs: number
  expected_runs: number
  warm_target: number
}

/** One region and language over the window. */
export interface Series {
  region: string
  language: string
  observed_runs_per_minute: number
  minutes: MinuteForecast[]
}

/** The answer of `GET /api/v1/forecast`. */
export interface Forecast {
  from: string
  to: string
  series: Series[]
  /** More sessions overlapped the window than the control plane reads. */
  capped: boolean
}

export const MINUTE_MS = 60_000
/** The window the page asks for: a week, which is also the control plane's default `forecast_window_minutes_max`. */
export const WEEK_MINUTES = 7 * 24 * 60
/** Minutes per drawn point: an hour. */
export const BUCKET_MINUTES = 60

/**
 * The next week from `nowMs`: `from` rounded down to the minute and `to`
 * exactly a week later. The control plane rounds `from` down itself, so an
 * unrounded `from` would make the window one minute longer than a week and
 * past `forecast_window_minutes_max`.
 */
export function weekWindow(nowMs: number, minutes: number = WEEK_MINUTES): { from: string; to: string } {
  const from = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS
  return { from: new Date(from).toISOString(), to: new Date(from + minutes * MINUTE_MS).toISOString() }
}

/** The query of `GET /api/v1/forecast` for a window and an optional region. */
export function forecastPath(window: { from: string; to: string }, region?: string): string {
  const q = new URLSearchParams({ from: window.from, to: window.to })
  if (region) q.set('region', region)
  return `/api/v1/forecast?${q}`
}

/** The regions of an answer, sorted, each once. */
export function regionsOf(forecast: Pick<Forecast, 'series'>): string[] {
  return [...new Set(forecast.series.map((s) => s.region))].sort()
}

/** One drawn point: the highest of each figure over a bucket of minutes. */
export interface Bucket {
  /** Start of the bucket (unix ms), aligned to the clock (whole hours for 60). */
  startMs: number
  /** Highest expected runs of a minute in the bucket. */
  expected: number
  /** Highest planned runs of a minute in the bucket. */
  planned: number
  /** Highest warm target of a minute in the bucket. */
  target: number
  /** Minutes of the series in the bucket (fewer than a bucket at the window's edges). */
  minutes: number
}

/**
 * One bucket per `bucketMinutes` of clock time (aligned to the epoch, so
 * hourly buckets are whole UTC hours, and whole local hours in every zone
 * with a whole-hour offset), each the maximum of its minutes: a burst of one
 * minute is the bucket's value instead of being averaged away. Minutes whose
 * `at` does not parse are left out; buckets come in time order whatever the
 * order of the minutes.
 */
export function downsample(minutes: MinuteForecast[], bucketMinutes: number = BUCKET_MINUTES): Bucket[] {
  const size = Math.max(1, Math.floor(bucketMinutes)) * MINUTE_MS
  const buckets = new Map<number, Bucket>()
  for (const m of minutes) {
    const at = Date.parse(m.at)
    if (Number.isNaN(at)) continue
    const startMs = Math.floor(at / size) * size
    const b = buckets.get(startMs)
    if (!b) {
      buckets.set(startMs, { startMs, expected: m.expected_runs, planned: m.planned_runs, target: m.warm_target, minutes: 1 })
    } else {
      b.expected = Math.max(b.expected, m.expected_runs)
      b.planned = Math.max(b.planned, m.planned_runs)
      b.target = Math.max(b.target, m.warm_target)
      b.minutes += 1
    }
  }
  return [...buckets.values()].sort((a, b) => a.startMs - b.startMs)
}

/** The busiest minute of a series and its highest warm target, for the text beside a chart. */
export interface Peak {
  /** Highest expected runs in a minute (0 for an empty series). */
  runs: number
  /** When the first minute with that many starts (unix ms); undefined for an empty series. */
  atMs?: number
  /** Highest warm target. */
  target: number
}

export function peakOf(minutes: MinuteForecast[]): Peak {
  const peak: Peak = { runs: 0, target: 0 }
  for (const m of minutes) {
    const at = Date.parse(m.at)
    if (Number.isNaN(at)) continue
    if (peak.atMs === undefined || m.expected_runs > peak.runs) { peak.runs = m.expected_runs; peak.atMs = at }
    peak.target = Math.max(peak.target, m.warm_target)
  }
  return peak
}

/**
 * A bucket's axis label: weekday and time (`Mon 09:00`) in `timeZone`
 * (the browser's own when absent), in the page's locale, 24-hour clock.
 */
export function bucketLabel(startMs: number, locale: string, timeZone?: string): string {
  return new Intl.DateTimeFormat(locale, { weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone }).format(new Date(startMs))
}

/** Rounds a rate to one decimal for reading (runs per minute are fractional). */
export function roundRate(n: number): number {
  return Math.round(n * 10) / 10
}
