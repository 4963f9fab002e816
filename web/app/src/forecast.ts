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
  /** Warm containers wanted at the minute's start: the planned runs and the observed rate. */
  warm_target: number
  /** The warm target of the planned runs alone: what the control plane sends edges, which add the rate they observe. */
  planned_target: number
  /** Runs recorded in the minute, for minutes up to now (the current one so far); null for minutes ahead. */
  actual_runs: number | null
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

// The operator's fleet page sets the forecast beside what ran: the last
// hour and the next two, minute by minute (180 points a series, few enough
// to draw without downsampling).

/** Minutes the fleet page shows before the current one: the last hour, where forecast meets what ran. */
export const PAST_MINUTES = 60
/** Minutes it shows from the current one on: the next two hours, what the pools warm for. */
export const AHEAD_MINUTES = 120

/**
 * The window from `past` minutes before the current minute's start to
 * `ahead` minutes after it (the current minute is the `past`-th, from 0),
 * on whole minutes as the control plane counts them.
 */
export function aroundWindow(nowMs: number, past: number = PAST_MINUTES, ahead: number = AHEAD_MINUTES): { from: string; to: string } {
  const minute = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS
  return { from: new Date(minute - past * MINUTE_MS).toISOString(), to: new Date(minute + ahead * MINUTE_MS).toISOString() }
}

/** One series minute by minute, as the fleet page draws it. */
export interface MinuteChart {
  /** Each minute's start (unix ms), in time order. */
  times: number[]
  /** Expected runs, one decimal. */
  expected: number[]
  /** Planned runs, one decimal. */
  planned: number[]
  /** Runs recorded; null for minutes ahead (a gap, not a zero). */
  actual: (number | null)[]
  warmTarget: number[]
  plannedTarget: number[]
  /** Index of the minute holding `nowMs`; undefined when the window does not hold it. */
  nowIndex?: number
}

/**
 * A series' minutes in time order, rates rounded for reading, minutes whose
 * `at` does not parse left out. The current minute is found by the clock
 * rather than by the last minute with actual runs, so it moves on between
 * two readings of the forecast.
 */
export function minuteChart(minutes: MinuteForecast[], nowMs: number): MinuteChart {
  const sorted = minutes
    .map((m) => ({ m, at: Date.parse(m.at) }))
    .filter((x) => !Number.isNaN(x.at))
    .sort((a, b) => a.at - b.at)
  const index = sorted.findIndex((x) => x.at <= nowMs && nowMs < x.at + MINUTE_MS)
  return {
    times: sorted.map((x) => x.at),
    expected: sorted.map((x) => roundRate(x.m.expected_runs)),
    planned: sorted.map((x) => roundRate(x.m.planned_runs)),
    actual: sorted.map((x) => x.m.actual_runs ?? null),
    warmTarget: sorted.map((x) => x.m.warm_target),
    plannedTarget: sorted.map((x) => x.m.planned_target),
    nowIndex: index < 0 ? undefined : index,
  }
}

/** Runs expected and recorded over the whole minutes before now, to set one beside the other. */
export interface PastTotals {
  expected: number
  actual: number
  /** Minutes counted (the current minute is not: it is still running). */
  minutes: number
}

/** Sums the finished minutes of a series that carry actual runs (those before `nowMs`). */
export function pastTotals(minutes: MinuteForecast[], nowMs: number): PastTotals {
  const out: PastTotals = { expected: 0, actual: 0, minutes: 0 }
  for (const m of minutes) {
    const at = Date.parse(m.at)
    // No actual runs: a minute ahead (null), or a control plane that does not send them (absent).
    if (Number.isNaN(at) || at + MINUTE_MS > nowMs || m.actual_runs === null || m.actual_runs === undefined) continue
    out.expected += m.expected_runs
    out.actual += m.actual_runs
    out.minutes += 1
  }
  out.expected = roundRate(out.expected)
  return out
}

/** The series of one region, by language. */
export function seriesOf(forecast: Pick<Forecast, 'series'>, region: string): Series[] {
  return forecast.series.filter((s) => s.region === region).sort((a, b) => a.language.localeCompare(b.language))
}

/**
 * The language a region's chart opens on: the most runs expected and
 * recorded over the window, the first by name on a tie; undefined for no
 * series.
 */
export function busiestLanguage(series: Series[]): string | undefined {
  let best: { language: string; runs: number } | undefined
  for (const s of series) {
    const runs = s.minutes.reduce((n, m) => n + m.expected_runs + (m.actual_runs ?? 0), 0)
    if (!best || runs > best.runs || (runs === best.runs && s.language.localeCompare(best.language) < 0)) best = { language: s.language, runs }
  }
  return best?.language
}

/** A minute's axis label: 24-hour time (`09:05`) in `timeZone` (the browser's own when absent), in the page's locale. */
export function minuteLabel(ms: number, locale: string, timeZone?: string): string {
  return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone }).format(new Date(ms))
}

/**
 * Each region's chosen language after a new answer: a choice the answer
 * still has a series for is kept (a chart does not jump to another language
 * because runs came in), any other region gets its busiest language.
 * Regions the answer does not name keep their choice for when they come back.
 */
export function chooseLanguages(forecast: Pick<Forecast, 'series'>, chosen: Record<string, string>): Record<string, string> {
  const out = { ...chosen }
  for (const region of regionsOf(forecast)) {
    const series = seriesOf(forecast, region)
    if (series.some((s) => s.language === out[region])) continue
    const busiest = busiestLanguage(series)
    if (busiest) out[region] = busiest
  }
  return out
}
