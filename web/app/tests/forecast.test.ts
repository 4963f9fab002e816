import { describe, expect, it } from 'vitest'
import {
  AHEAD_MINUTES, BUCKET_MINUTES, MINUTE_MS, PAST_MINUTES, WEEK_MINUTES, aroundWindow, bucketLabel, busiestLanguage, chooseLanguages,
  downsample, forecastPath, minuteChart, minuteLabel, pastTotals, peakOf, regionsOf, roundRate, seriesOf, weekWindow,
  type Bucket, type MinuteForecast,
} from '../src/forecast'

const T0 = Date.UTC(2031, 8, 1, 9, 0) // Monday 1 September 2031, 09:00 UTC

/** A series of minutes from `startMs`, one per value: [expected, target] (planned = expected). */
function minutes(startMs: number, values: [number, number][]): MinuteForecast[] {
  return values.map(([expected, target], i) => ({
    at: new Date(startMs + i * MINUTE_MS).toISOString(),
    planned_runs: expected,
    expected_runs: expected,
    warm_target: target,
    planned_target: target,
    actual_runs: null,
  }))
}

/** Checks downsampling against buckets written as [start, expected, target, minutes]. */
function check(input: MinuteForecast[], expected: [number, number, number, number][], bucketMinutes = BUCKET_MINUTES) {
  const got = downsample(input, bucketMinutes).map((b: Bucket) => [b.startMs, b.expected, b.target, b.minutes])
  expect(got).toEqual(expected)
}

describe('forecast downsampling', () => {
  it('gives nothing for an empty series', () => {
    check([], [])
    expect(peakOf([])).toEqual({ runs: 0, target: 0 })
  })

  it('keeps fewer minutes than a bucket as one point', () => {
    check(minutes(T0, [[1, 1], [2, 1], [0.5, 1]]), [[T0, 2, 1, 3]])
  })

  it('aligns buckets to the clock hour, so a window starting mid-hour has partial edges', () => {
    const start = T0 + 50 * MINUTE_MS // 09:50
    check(minutes(start, Array.from({ length: 20 }, (): [number, number] => [1, 1])), [
      [T0, 1, 1, 10],
      [T0 + 3_600_000, 1, 1, 10],
    ])
  })

  it('keeps a burst of one minute as its hour\'s value', () => {
    const values = Array.from({ length: 180 }, (): [number, number] => [0.2, 1])
    values[75] = [300, 0] // 10:15, one minute
    values[150] = [0, 40] // 11:30, a target alone
    check(minutes(T0, values), [
      [T0, 0.2, 1, 60],
      [T0 + 3_600_000, 300, 1, 60],
      [T0 + 7_200_000, 0.2, 40, 60],
    ])
  })

  it('reads the times as the control plane writes them (RFC 3339 UTC, to the second)', () => {
    check([{ at: '2031-09-01T09:59:00Z', planned_runs: 1, expected_runs: 1, warm_target: 2, planned_target: 2, actual_runs: null }], [[T0, 1, 2, 1]])
  })

  it('turns a week of minutes into one point per hour', () => {
    const week = minutes(T0, Array.from({ length: WEEK_MINUTES }, (_, i): [number, number] => [i % 60 === 0 ? 10 : 0, 0]))
    const buckets = downsample(week)
    expect(buckets.length).toBe(168)
    expect(buckets.every((b) => b.expected === 10 && b.minutes === 60)).toBe(true)
  })

  it('orders buckets by time and skips minutes whose time does not parse', () => {
    const input = [...minutes(T0 + 3_600_000, [[5, 2]]), { at: 'not a time', planned_runs: 99, expected_runs: 99, warm_target: 99, planned_target: 99, actual_runs: null }, ...minutes(T0, [[1, 1]])]
    check(input, [[T0, 1, 1, 1], [T0 + 3_600_000, 5, 2, 1]])
  })

  it('takes the highest of planned runs separately from expected runs', () => {
    const input: MinuteForecast[] = [
      { at: new Date(T0).toISOString(), planned_runs: 0, expected_runs: 3, warm_target: 1, planned_target: 0, actual_runs: null },
      { at: new Date(T0 + MINUTE_MS).toISOString(), planned_runs: 2, expected_runs: 2, warm_target: 1, planned_target: 1, actual_runs: null },
    ]
    expect(downsample(input)[0].planned).toBe(2)
    expect(downsample(input)[0].expected).toBe(3)
  })

  it('sizes buckets as asked, at least one minute', () => {
    check(minutes(T0, [[1, 0], [4, 0], [2, 0]]), [[T0, 1, 0, 1], [T0 + 60_000, 4, 0, 1], [T0 + 120_000, 2, 0, 1]], 1)
    check(minutes(T0, [[1, 0], [4, 0]]), [[T0, 1, 0, 1], [T0 + 60_000, 4, 0, 1]], 0)
  })
})

describe('forecast peak', () => {
  it('names the first busiest minute and the highest target', () => {
    const values: [number, number][] = [[1, 2], [7, 3], [7, 9], [2, 1]]
    expect(peakOf(minutes(T0, values))).toEqual({ runs: 7, atMs: T0 + MINUTE_MS, target: 9 })
  })
  it('names the first minute of a quiet series with no runs', () => {
    expect(peakOf(minutes(T0, [[0, 0], [0, 0]]))).toEqual({ runs: 0, atMs: T0, target: 0 })
  })
})

describe('forecast labels and window', () => {
  it('labels a bucket with weekday and 24-hour time in the given zone and locale', () => {
    expect(bucketLabel(T0, 'en', 'UTC')).toBe('Mon 09:00')
    expect(bucketLabel(T0 + 15 * 3_600_000, 'en', 'UTC')).toBe('Tue 00:00')
    expect(bucketLabel(T0, 'en', 'Asia/Tokyo')).toBe('Mon 18:00')
    expect(bucketLabel(T0, 'de', 'UTC')).toMatch(/^Mo\.?,? 09:00$/)
  })

  it('asks for a week from now rounded down to the minute, so the window is never a minute too long', () => {
    const w = weekWindow(T0 + 42_123)
    expect(w).toEqual({ from: '2031-09-01T09:00:00.000Z', to: '2031-09-08T09:00:00.000Z' })
    expect((Date.parse(w.to) - Date.parse(w.from)) / MINUTE_MS).toBe(WEEK_MINUTES)
  })

  it('builds the forecast query, with a region only when one is chosen', () => {
    const w = weekWindow(T0)
    expect(forecastPath(w)).toBe('/api/v1/forecast?from=2031-09-01T09%3A00%3A00.000Z&to=2031-09-08T09%3A00%3A00.000Z')
    expect(forecastPath(w, 'eu-west')).toBe('/api/v1/forecast?from=2031-09-01T09%3A00%3A00.000Z&to=2031-09-08T09%3A00%3A00.000Z&region=eu-west')
  })

  it('lists the regions of an answer once each, sorted', () => {
    const s = (region: string, language: string) => ({ region, language, observed_runs_per_minute: 0, minutes: [] })
    expect(regionsOf({ series: [s('us-east', 'python'), s('eu-west', 'python'), s('eu-west', 'java')] })).toEqual(['eu-west', 'us-east'])
    expect(regionsOf({ series: [] })).toEqual([])
  })

  it('rounds rates to one decimal', () => {
    expect(roundRate(2.345)).toBe(2.3)
    expect(roundRate(0.04)).toBe(0)
  })
})

describe('the fleet page\'s window of minutes', () => {
  /** Minutes from `startMs` with expected runs, targets and actual runs (null ahead). */
  const around = (startMs: number, rows: [number, number, number | null][]): MinuteForecast[] =>
    rows.map(([expected, target, actual], i) => ({
      at: new Date(startMs + i * MINUTE_MS).toISOString(),
      planned_runs: expected / 2,
      expected_runs: expected,
      warm_target: target,
      planned_target: target - 1,
      actual_runs: actual,
    }))

  it('asks for the last hour and the next two, on whole minutes', () => {
    const w = aroundWindow(T0 + 42_123)
    expect(w).toEqual({ from: '2031-09-01T08:00:00.000Z', to: '2031-09-01T11:00:00.000Z' })
    expect((Date.parse(w.to) - Date.parse(w.from)) / MINUTE_MS).toBe(PAST_MINUTES + AHEAD_MINUTES)
    expect(aroundWindow(T0, 5, 10)).toEqual({ from: '2031-09-01T08:55:00.000Z', to: '2031-09-01T09:10:00.000Z' })
  })

  it('lays a series out minute by minute, in time order, actual runs only up to now', () => {
    const input = around(T0, [[1.26, 3, 2], [2, 4, 0], [0.04, 2, null]])
    const chart = minuteChart([input[2], input[0], input[1], { ...input[0], at: 'never' }], T0 + MINUTE_MS + 30_000)
    expect(chart).toEqual({
      times: [T0, T0 + MINUTE_MS, T0 + 2 * MINUTE_MS],
      expected: [1.3, 2, 0],
      planned: [0.6, 1, 0],
      actual: [2, 0, null],
      warmTarget: [3, 4, 2],
      plannedTarget: [2, 3, 1],
      nowIndex: 1,
    })
  })

  it('has no current minute when now is outside the window', () => {
    expect(minuteChart(around(T0, [[1, 1, 1]]), T0 + MINUTE_MS).nowIndex).toBeUndefined()
    expect(minuteChart(around(T0, [[1, 1, 1]]), T0 - 1).nowIndex).toBeUndefined()
    expect(minuteChart([], T0)).toEqual({ times: [], expected: [], planned: [], actual: [], warmTarget: [], plannedTarget: [], nowIndex: undefined })
  })

  it('sets the runs recorded beside the runs expected over the finished minutes only', () => {
    const input = around(T0, [[1.5, 1, 2], [2.25, 1, 0], [3, 1, 1], [4, 1, null]])
    // 09:02:30: the third minute is still running, the fourth ahead.
    expect(pastTotals(input, T0 + 2 * MINUTE_MS + 30_000)).toEqual({ expected: 3.8, actual: 2, minutes: 2 })
    expect(pastTotals(input, T0)).toEqual({ expected: 0, actual: 0, minutes: 0 })
  })

  it('picks a region\'s series and its busiest language, runs expected and recorded together', () => {
    const s = (region: string, language: string, rows: [number, number, number | null][]) => ({ region, language, observed_runs_per_minute: 0, minutes: around(T0, rows) })
    const forecast = { series: [s('eu-west', 'python', [[1, 1, null]]), s('us-east', 'java', [[9, 1, null]]), s('eu-west', 'java', [[0.5, 1, 1]]), s('eu-west', 'go', [[1, 1, 0.5]])] }
    expect(seriesOf(forecast, 'eu-west').map((x) => x.language)).toEqual(['go', 'java', 'python'])
    expect(seriesOf(forecast, 'ap-south')).toEqual([])
    // java: 0.5 + 1; go: 1 + 0.5; python: 1. The tie goes to the first by name.
    expect(busiestLanguage(seriesOf(forecast, 'eu-west'))).toBe('go')
    expect(busiestLanguage([])).toBeUndefined()
  })

  it('keeps a chosen language while its series lasts, and chooses the busiest elsewhere', () => {
    const s = (region: string, language: string, expected: number) => ({ region, language, observed_runs_per_minute: 0, minutes: around(T0, [[expected, 1, null]]) })
    const forecast = { series: [s('eu-west', 'python', 1), s('eu-west', 'java', 5), s('us-east', 'go', 2)] }
    expect(chooseLanguages(forecast, {})).toEqual({ 'eu-west': 'java', 'us-east': 'go' })
    expect(chooseLanguages(forecast, { 'eu-west': 'python', 'us-east': 'rust', 'ap-south': 'c' })).toEqual({ 'eu-west': 'python', 'us-east': 'go', 'ap-south': 'c' })
  })

  it('labels a minute with its 24-hour time in the given zone', () => {
    expect(minuteLabel(T0 + 5 * MINUTE_MS, 'en', 'UTC')).toBe('09:05')
    expect(minuteLabel(T0 + 15 * 3_600_000, 'en', 'UTC')).toBe('00:00')
    expect(minuteLabel(T0, 'en', 'Asia/Kolkata')).toBe('14:30')
  })
})
