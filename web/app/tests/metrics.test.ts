import { describe, expect, it } from 'vitest'
import { deltaHistogram, histogramOf, hotShare, LatencyTracker, mean, parsePrometheus, perMinute, quantile, startsOf, type Histogram } from '../src/metrics'
import { poolRows } from '../src/fleet'

// The shape the prometheus crate writes: HELP/TYPE comments, constant labels
// sorted in, le last, +Inf bucket.
const TEXT = `# HELP lyceum_http_request_duration_seconds Time to answer an HTTP request
# TYPE lyceum_http_request_duration_seconds histogram
lyceum_http_request_duration_seconds_bucket{method="GET",region="eu-west",role="edge",route="/healthz",le="0.001"} 8
lyceum_http_request_duration_seconds_bucket{method="GET",region="eu-west",role="edge",route="/healthz",le="0.01"} 10
lyceum_http_request_duration_seconds_bucket{method="GET",region="eu-west",role="edge",route="/healthz",le="+Inf"} 10
lyceum_http_request_duration_seconds_sum{method="GET",region="eu-west",role="edge",route="/healthz"} 0.012
lyceum_http_request_duration_seconds_count{method="GET",region="eu-west",role="edge",route="/healthz"} 10
lyceum_http_request_duration_seconds_bucket{method="POST",region="eu-west",role="edge",route="/api/v1/runs",le="0.001"} 0
lyceum_http_request_duration_seconds_bucket{method="POST",region="eu-west",role="edge",route="/api/v1/runs",le="0.01"} 0
lyceum_http_request_duration_seconds_bucket{method="POST",region="eu-west",role="edge",route="/api/v1/runs",le="+Inf"} 2
lyceum_http_request_duration_seconds_sum{method="POST",region="eu-west",role="edge",route="/api/v1/runs"} 1.5
lyceum_http_request_duration_seconds_count{method="POST",region="eu-west",role="edge",route="/api/v1/runs"} 2
# TYPE lyceum_sandbox_starts_total counter
lyceum_sandbox_starts_total{kind="hot",language="python",region="eu-west",role="edge"} 3
lyceum_sandbox_starts_total{kind="cold",language="python",region="eu-west",role="edge"} 1
lyceum_sandbox_starts_total{kind="cold",language="go",region="eu-west",role="edge"} 2
odd{label="a \\"quoted\\" \\\\ value\\n",other="x"} 1.5e3 1700000000000
broken{label="unterminated} 1
lyceum_ready 1
`

const h = (buckets: [number, number][], sum = 0): Histogram => ({ buckets, count: buckets[buckets.length - 1][1], sum })

describe('prometheus text', () => {
  it('parses names, labels with escapes, values and timestamps; skips comments and broken lines', () => {
    const samples = parsePrometheus(TEXT)
    expect(samples.find((s) => s.name === 'odd')).toEqual({ name: 'odd', labels: { label: 'a "quoted" \\ value\n', other: 'x' }, value: 1500 })
    expect(samples.find((s) => s.name === 'lyceum_ready')).toEqual({ name: 'lyceum_ready', labels: {}, value: 1 })
    expect(samples.some((s) => s.name === 'broken')).toBe(false)
    expect(samples.filter((s) => s.name.startsWith('lyceum_http')).length).toBe(10)
    expect(samples.find((s) => s.labels.le === '+Inf')?.value).toBe(10)
  })

  it('sums a histogram over its series, or over the series a filter keeps', () => {
    const samples = parsePrometheus(TEXT)
    expect(histogramOf(samples, 'lyceum_http_request_duration_seconds')).toEqual({ buckets: [[0.001, 8], [0.01, 10], [Infinity, 12]], count: 12, sum: 1.512 })
    expect(histogramOf(samples, 'lyceum_http_request_duration_seconds', (l) => l.route === '/healthz').count).toBe(10)
    expect(histogramOf(samples, 'lyceum_sandbox_run_seconds')).toEqual({ buckets: [], count: 0, sum: 0 })
  })

  it('counts hot and cold starts per language', () => {
    const starts = startsOf(parsePrometheus(TEXT))
    expect(Object.fromEntries(starts)).toEqual({ python: { hot: 3, cold: 1 }, go: { hot: 0, cold: 2 } })
    expect(hotShare(starts.get('python')!)).toBe(0.75)
    expect(hotShare({ hot: 0, cold: 0 })).toBeUndefined()
  })
})

describe('histogram figures', () => {
  it('takes the delta of two readings, and the whole reading after a restart', () => {
    const a = h([[0.1, 2], [1, 3], [Infinity, 3]], 0.5)
    const b = h([[0.1, 5], [1, 9], [Infinity, 10]], 4.5)
    expect(deltaHistogram(a, b)).toEqual({ buckets: [[0.1, 3], [1, 6], [Infinity, 7]], count: 7, sum: 4 })
    const restarted = h([[0.1, 1], [1, 1], [Infinity, 1]], 0.05)
    expect(deltaHistogram(b, restarted)).toEqual(restarted)
    expect(deltaHistogram(undefined, a)).toEqual(a)
  })

  it('interpolates quantiles within buckets like histogram_quantile', () => {
    const x = h([[0.1, 50], [0.2, 90], [0.5, 100], [Infinity, 100]])
    expect(quantile(x, 0.5)).toBeCloseTo(0.1)
    expect(quantile(x, 0.25)).toBeCloseTo(0.05) // from 0 in the first bucket
    expect(quantile(x, 0.7)).toBeCloseTo(0.15)
    expect(quantile(x, 0.95)).toBeCloseTo(0.35)
    // Skips empty buckets; in +Inf it answers the highest finite bound.
    expect(quantile(h([[0.1, 0], [0.2, 0], [0.5, 4], [Infinity, 4]]), 0.5)).toBeCloseTo(0.35)
    expect(quantile(h([[0.1, 1], [Infinity, 10]]), 0.95)).toBe(0.1)
    expect(quantile(h([[0.1, 0], [Infinity, 0]]), 0.5)).toBeUndefined()
    expect(mean(h([[1, 4], [Infinity, 4]], 2))).toBe(0.5)
    expect(mean(h([[1, 0], [Infinity, 0]]))).toBeUndefined()
  })

  it('gives start rates per minute, zero without a baseline or after a restart', () => {
    expect(perMinute(2, 5, 30)).toBe(6)
    expect(perMinute(undefined, 5, 30)).toBe(0)
    expect(perMinute(7, 5, 30)).toBe(0)
    expect(perMinute(2, 5, 0)).toBe(0)
  })
})

/** A reading with `fast` requests at 1 ms and `slow` at 100 ms so far, and `runs` at 0.5 s. */
function reading(fast: number, slow: number, runs = 0) {
  return parsePrometheus(`lyceum_http_request_duration_seconds_bucket{le="0.001"} ${fast}
lyceum_http_request_duration_seconds_bucket{le="0.1"} ${fast + slow}
lyceum_http_request_duration_seconds_bucket{le="+Inf"} ${fast + slow}
lyceum_http_request_duration_seconds_count ${fast + slow}
lyceum_sandbox_run_seconds_bucket{language="python",le="1"} ${runs}
lyceum_sandbox_run_seconds_bucket{language="python",le="+Inf"} ${runs}
lyceum_sandbox_run_seconds_count{language="python"} ${runs}
`)
}

describe('latency tracker', () => {
  it('charts per-interval percentiles per edge, from the second reading on', () => {
    const t = new LatencyTracker(3)
    t.add(1000, new Map([['a', reading(10, 0)], ['b', reading(0, 0)]]))
    expect(t.series.labels).toEqual([]) // baselines only
    t.add(2000, new Map([['a', reading(20, 0)], ['b', reading(0, 10, 2)]]))
    expect(t.series.labels).toEqual([2000])
    expect(t.series.edges.get('a')!.http).toEqual([{ p50: 0.5, p95: 1 }])
    expect(t.series.edges.get('a')!.run).toEqual([{ p50: null, p95: null }]) // no run in the interval
    expect(t.series.edges.get('b')!.http[0].p95).toBe(95.1) // 95.05, to 0.1 ms
    expect(t.series.edges.get('b')!.run[0].p50).toBe(500)
  })

  it('leaves a gap for an edge that did not answer and rebases it when it is back', () => {
    const t = new LatencyTracker(10)
    t.add(1, new Map([['a', reading(0, 0)], ['b', reading(0, 0)]]))
    t.add(2, new Map([['a', reading(4, 0)], ['b', undefined]]))
    t.add(3, new Map([['a', reading(8, 0)], ['b', reading(0, 100)]])) // b's first reading again: a baseline
    t.add(4, new Map([['a', reading(8, 0)], ['b', reading(0, 110)]]))
    expect(t.series.labels).toEqual([2, 3, 4])
    expect(t.series.edges.get('a')!.http.map((p) => p.p95)).toEqual([1, 1, null])
    // b appears at its first delta, padded before it.
    expect(t.series.edges.get('b')!.http.map((p) => p.p95 === null)).toEqual([true, true, false])
  })

  it('keeps only the last `max` intervals', () => {
    const t = new LatencyTracker(2)
    for (let i = 0; i < 5; i++) t.add(i, new Map([['a', reading(i, 0)]]))
    expect(t.series.labels).toEqual([3, 4])
    expect(t.series.edges.get('a')!.http.length).toBe(2)
  })
})

describe('pool rows', () => {
  it('joins pools with start counts and rates, listing unpooled languages last', () => {
    const pools = [{ language: 'python', warm: 2, target: 2 }, { language: 'rust', warm: 0, target: 1 }]
    const starts = new Map([['python', { hot: 9, cold: 1 }], ['go', { hot: 0, cold: 3 }]])
    const base = new Map([['python', { hot: 3, cold: 1 }]])
    const rows = poolRows(pools, starts, base, 60)
    expect(rows.map((r) => r.language)).toEqual(['python', 'rust', 'go'])
    expect(rows[0]).toEqual({ language: 'python', warm: 2, target: 2, hot: 9, cold: 1, hotShare: 0.9, hotPerMinute: 6, coldPerMinute: 0 })
    expect(rows[1]).toMatchObject({ hot: 0, cold: 0, hotShare: undefined, hotPerMinute: 0 })
    // go was not in the baseline: it counts from zero.
    expect(rows[2]).toMatchObject({ warm: 0, target: 0, coldPerMinute: 3 })
    // Without metrics (or a baseline) the counts are zero and rates too.
    expect(poolRows(pools, undefined, undefined, 0)[0]).toMatchObject({ hot: 0, cold: 0, hotPerMinute: 0 })
  })
})
