import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  ChaosApi, ChaosApiError, ERROR_CODES, LIVE_POLL_ACTIVE_MS, LIVE_POLL_IDLE_MS, SPARK, STATES, TIMELINE,
  axisTicks, breaks, canAbort, consoleBase, drillsUrlOf, formatDuration, formatOffset, formatProbeValue, knownState,
  pollIntervalMs, progressShare, REPORT_CSP, reportDocument, sparkline, startedMs, timelineGeometry, type Fault,
} from '../src/chaos'

/** A fetch that answers from a table and records what was asked. */
function fake(answers: Record<string, { status?: number; body: unknown }>) {
  const asked: { url: string; init?: RequestInit }[] = []
  const fetcher = async (url: string, init?: RequestInit) => {
    asked.push({ url, init })
    const key = `${init?.method ?? 'GET'} ${url}`
    const a = answers[key]
    if (!a) throw new TypeError('Failed to fetch')
    const text = typeof a.body === 'string' ? a.body : JSON.stringify(a.body)
    return new Response(text, { status: a.status ?? 200, statusText: 'status text' })
  }
  return { asked, fetcher }
}

const header = (init: RequestInit | undefined, name: string) => (init?.headers as Record<string, string>)[name]

describe('chaos api', () => {
  it('finds drills_url only when the edge names one', () => {
    expect(drillsUrlOf({ node_id: 'e1', drills_url: 'http://127.0.0.1:7000' })).toBe('http://127.0.0.1:7000')
    expect(drillsUrlOf({ node_id: 'e1' })).toBeUndefined()
    expect(drillsUrlOf({ drills_url: '' })).toBeUndefined()
    expect(drillsUrlOf({ drills_url: null })).toBeUndefined()
    expect(drillsUrlOf(null)).toBeUndefined()
  })

  it('hangs the routes from the supervisor, whichever way drills_url is written', () => {
    for (const url of ['http://127.0.0.1:7000', 'http://127.0.0.1:7000/', 'http://127.0.0.1:7000/v1/chaos', 'http://127.0.0.1:7000/v1/chaos/drills/']) {
      expect(consoleBase(url), url).toBe('http://127.0.0.1:7000')
    }
  })

  it('sends the bearer token and reads the catalogue, runs and live status', async () => {
    const drill = { name: 'edge-paused', title: 'A paused edge', hypothesis: 'h', duration_ms: 70000, settle_ms: 20000, faults: [], runnable: true, problems: [] }
    const { asked, fetcher } = fake({
      'GET http://s/v1/chaos/drills': { body: { drills: [drill] } },
      'GET http://s/v1/chaos/runs': { body: { runs: [] } },
      'GET http://s/v1/chaos/live': { body: { state: 'idle' } },
      'POST http://s/v1/chaos/runs': { status: 202, body: { state: 'preparing', drill: 'edge-paused' } },
      'POST http://s/v1/chaos/live/abort': { status: 202, body: { state: 'running' } },
      'GET http://s/v1/chaos/runs/edge-paused-2026%2F1/html': { body: '<!doctype html><p>report' },
    })
    const api = new ChaosApi('http://s/', 'tok', fetcher)
    expect(await api.drills()).toEqual([drill])
    expect(await api.runs()).toEqual([])
    expect((await api.live()).state).toBe('idle')
    expect((await api.start('edge-paused')).state).toBe('preparing')
    expect(asked.at(-1)!.init!.body).toBe('{"drill":"edge-paused"}')
    expect(header(asked.at(-1)!.init, 'content-type')).toBe('application/json')
    expect((await api.abort()).state).toBe('running')
    expect(await api.reportHtml('edge-paused-2026/1')).toBe('<!doctype html><p>report')
    for (const a of asked) expect(header(a.init, 'authorization'), a.url).toBe('Bearer tok')
    // No body, no content type: a GET stays as simple as CORS allows.
    expect(header(asked[0].init, 'content-type')).toBeUndefined()
  })

  it('fills a refused drill\'s missing lists', async () => {
    const { fetcher } = fake({ 'GET http://s/v1/chaos/drills': { body: { drills: [{ name: 'broken', title: '', hypothesis: '', runnable: false }] } } })
    const [d] = await new ChaosApi('http://s', 't', fetcher).drills()
    expect(d.faults).toEqual([])
    expect(d.problems).toEqual([])
  })

  const refused = async (answer: { status?: number; body: unknown }, op: (api: ChaosApi) => Promise<unknown> = (api) => api.start('x')) => {
    const { fetcher } = fake({ 'POST http://s/v1/chaos/runs': answer, 'GET http://s/v1/chaos/drills': answer })
    try {
      await op(new ChaosApi('http://s', 't', fetcher))
    } catch (e) {
      expect(e).toBeInstanceOf(ChaosApiError)
      const { status, code, message, problems } = e as ChaosApiError
      return { status, code, message, problems }
    }
    throw new Error('not refused')
  }

  it('turns refusals into code, message and problems', async () => {
    expect(await refused({ status: 409, body: { error: { code: 'drill_running', message: 'a drill runs' } } }))
      .toEqual({ status: 409, code: 'drill_running', message: 'a drill runs', problems: [] })
    // problems inside the error object, or beside it: both are read.
    expect(await refused({ status: 422, body: { error: { code: 'drill_refused', message: 'no', problems: ['line 3: bad [bad_value]'] } } }))
      .toEqual({ status: 422, code: 'drill_refused', message: 'no', problems: ['line 3: bad [bad_value]'] })
    expect((await refused({ status: 422, body: { error: { code: 'drill_refused', message: 'no' }, problems: ['p'] } })).problems).toEqual(['p'])
    // Not our JSON (a proxy's page): the status text, code "error".
    expect(await refused({ status: 502, body: '<html>bad gateway</html>' })).toEqual({ status: 502, code: 'error', message: 'status text', problems: [] })
  })

  it('names a supervisor that does not answer, and answers it cannot read', async () => {
    expect((await refused({ body: {} }, (api) => api.live())).code).toBe('unreachable')
    expect((await refused({ body: 'not json' }, (api) => api.drills())).code).toBe('bad_response')
    expect((await refused({ body: { items: [] } }, (api) => api.drills())).code).toBe('bad_response')
  })
})

describe('report page', () => {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">`
  it('forbids scripts in the opened report, first thing in its head', () => {
    expect(reportDocument('<!doctype html><html><head><title>r</title></head><body></body></html>'))
      .toBe(`<!doctype html><html><head>${meta}<title>r</title></head><body></body></html>`)
    expect(reportDocument('<HEAD lang="en"><p>x')).toBe(`<HEAD lang="en">${meta}<p>x`)
    expect(reportDocument('<!DOCTYPE html>\n<p>no head')).toBe(`<!DOCTYPE html>${meta}\n<p>no head`)
    expect(reportDocument('<p>bare')).toBe(`${meta}<p>bare`)
    expect(REPORT_CSP).toContain("default-src 'none'")
    expect(REPORT_CSP).not.toContain('script-src')
  })
  it('does not take a <header> for the head', () => {
    expect(reportDocument('<!doctype html><header>h</header>')).toBe(`<!doctype html>${meta}<header>h</header>`)
  })
})

describe('polling', () => {
  it('asks every second while a drill is under way, every five otherwise', () => {
    for (const s of ['preparing', 'running', 'checking']) expect(pollIntervalMs(s), s).toBe(LIVE_POLL_ACTIVE_MS)
    for (const s of ['idle', 'finished', 'failed', 'died', 'exploded', '', undefined]) expect(pollIntervalMs(s), String(s)).toBe(LIVE_POLL_IDLE_MS)
    expect(LIVE_POLL_ACTIVE_MS).toBe(1000)
    expect(LIVE_POLL_IDLE_MS).toBe(5000)
  })
  it('offers abort only while there is something to heal', () => {
    expect(['preparing', 'running'].every(canAbort)).toBe(true)
    expect(['checking', 'finished', 'idle', 'failed', 'died', 'unknown', undefined].some(canAbort)).toBe(false)
  })
  it('names an unknown state as such', () => {
    expect(knownState('running')).toBe('running')
    expect(knownState('exploded')).toBe('unknown')
    expect(knownState(undefined)).toBe('unknown')
  })
  it('keeps progress within 0..1', () => {
    expect(progressShare(45_000, 90_000)).toBe(0.5)
    expect(progressShare(100_000, 90_000)).toBe(1)
    expect(progressShare(-5, 90_000)).toBe(0)
    expect(progressShare(5, 0)).toBe(0)
    expect(progressShare(undefined, undefined)).toBe(0)
  })
})

describe('sparkline', () => {
  const inside = (y: number) => y >= SPARK.pad && y <= SPARK.height - SPARK.pad
  const pts = (points: string) => points.split(' ').map((p) => p.split(',').map(Number))

  it('draws nothing but the threshold without samples', () => {
    const s = sparkline([], 800, 90_000)
    expect(s.points).toBe('')
    expect(s.last).toBeUndefined()
    expect(inside(s.thresholdY!)).toBe(true)
    expect(s.viewBox).toBe(`0 0 ${SPARK.width} ${SPARK.height}`)
  })

  it('marks a lone sample with a dot', () => {
    const s = sparkline([{ at_ms: 45_000, value: 100 }], 800, 90_000)
    expect(s.points).toBe(`${SPARK.width / 2},${s.last!.y}`)
    expect(s.last).toMatchObject({ x: SPARK.width / 2, value: 100 })
    // 100 is below the threshold line (larger y is lower).
    expect(s.last!.y).toBeGreaterThan(s.thresholdY!)
  })

  it('draws all-equal values flat, even all zero with a zero threshold', () => {
    const flat = sparkline([0, 1, 2].map((i) => ({ at_ms: i * 1000, value: 0.5 })), 0.99, 2000, [], 1)
    expect(new Set(pts(flat.points).map(([, y]) => y)).size).toBe(1)
    const zero = sparkline([0, 1].map((i) => ({ at_ms: i * 1000, value: 0 })), 0, 1000)
    expect(zero.hi).toBeGreaterThan(zero.lo)
    expect(pts(zero.points).every(([x, y]) => Number.isFinite(x) && inside(y))).toBe(true)
    expect(zero.thresholdY).toBe(SPARK.height - SPARK.pad)
  })

  it('keeps a threshold far above or below the data inside the picture', () => {
    const above = sparkline([{ at_ms: 0, value: 10 }, { at_ms: 1000, value: 12 }], 5000, 1000)
    expect(inside(above.thresholdY!)).toBe(true)
    expect(above.hi).toBeGreaterThanOrEqual(5000)
    const below = sparkline([{ at_ms: 0, value: 900 }, { at_ms: 1000, value: 1200 }], -50, 1000)
    expect(inside(below.thresholdY!)).toBe(true)
    expect(below.lo).toBe(-50)
    expect(pts(below.points).every(([, y]) => inside(y))).toBe(true)
  })

  it('scales ratios to 0..1 unless a value is above 1', () => {
    const r = sparkline([{ at_ms: 0, value: 1 }, { at_ms: 500, value: 0.8 }], 0.99, 1000, [], 1)
    expect([r.lo, r.hi]).toEqual([0, 1])
    expect(pts(r.points)[0][1]).toBe(SPARK.pad)
    expect(sparkline([{ at_ms: 0, value: 2 }], 0.99, 1000, [], 1).hi).toBeCloseTo(2.2)
  })

  it('puts time on the drill\'s axis, clamped, and leaves out samples that are not numbers', () => {
    const s = sparkline([{ at_ms: 2000, value: 1 }, { at_ms: 0, value: NaN }, { at_ms: 0, value: 3 }, { at_ms: 9000, value: 2 }], 10, 4000)
    const xs = pts(s.points).map(([x]) => x)
    expect(xs).toEqual([SPARK.pad, SPARK.width / 2, SPARK.width - SPARK.pad])
  })

  it('without an end, spans the samples; a lone sample at 0 sits on the left', () => {
    expect(pts(sparkline([{ at_ms: 0, value: 1 }, { at_ms: 3000, value: 1 }], 2, undefined).points).map(([x]) => x)).toEqual([SPARK.pad, SPARK.width - SPARK.pad])
    expect(sparkline([{ at_ms: 0, value: 1 }], 2, 0).last!.x).toBe(SPARK.pad)
  })

  it('has no threshold line for a threshold that is not a number', () => {
    expect(sparkline([{ at_ms: 0, value: 1 }], NaN, 10).thresholdY).toBeUndefined()
  })

  it('shades the fault windows on the same time axis', () => {
    const s = sparkline([], 1, 10_000, [{ id: 1, label: 'kill', start_ms: 5000, duration_ms: 5000 }])
    expect(s.windows).toEqual([{ x: SPARK.width / 2, width: SPARK.width / 2 - SPARK.pad }])
  })

  it('knows which side of the threshold is broken', () => {
    expect(breaks('run_latency_p99_ms', 900, 800)).toBe(true)
    expect(breaks('run_latency_p99_ms', 800, 800)).toBe(false)
    expect(breaks('class_delivery_ratio', 0.9, 0.99)).toBe(true)
    expect(breaks('readiness_ratio', 1, 1)).toBe(false)
  })
})

describe('timeline', () => {
  const plan: Fault[] = [
    { id: 2, label: 'kill edge us-east', start_ms: 60_000, duration_ms: 30_000 },
    { id: 1, label: 'pause edge eu-west', start_ms: 0, duration_ms: 10_000 },
  ]
  const { width, left, right, lane, axis } = TIMELINE
  const plot = width - left - right

  it('gives each fault its lane and window, in id order', () => {
    const g = timelineGeometry(plan, [], 120_000)
    expect(g.bars.map((b) => [b.id, b.x, b.width, b.y])).toEqual([
      [1, left, Math.round((plot / 12) * 10) / 10, 3],
      [2, left + plot / 2, plot / 4, lane + 3],
    ])
    expect(g.axisY).toBe(2 * lane)
    expect(g.viewBox).toBe(`0 0 ${width} ${2 * lane + axis}`)
    expect(g.now).toBeUndefined()
  })

  it('ticks events on their fault\'s lane and leaves out events of faults not planned', () => {
    const g = timelineGeometry(plan, [
      { at_ms: 60_000, fault: 2, label: 'kill', event: 'applied', detail: null },
      { at_ms: 70_000, fault: 2, label: 'kill', event: 'healed_on_abort', detail: null },
      { at_ms: 1000, fault: 9, label: '?', event: 'failed', detail: 'x' },
    ], 120_000, 70_000)
    const r = (v: number) => Math.round(v * 10) / 10
    expect(g.marks.map((m) => [m.event, m.x, m.y1])).toEqual([['applied', left + plot / 2, lane + 1], ['healed_on_abort', r(left + (plot * 7) / 12), lane + 1]])
    expect(g.now).toBe(r(left + (plot * 7) / 12))
  })

  it('keeps a one-millisecond fault visible and clamps what runs past the end', () => {
    const g = timelineGeometry([{ id: 1, label: 'x', start_ms: 1000, duration_ms: 1 }, { id: 2, label: 'y', start_ms: 50_000, duration_ms: 100_000 }], [], 60_000, 90_000)
    expect(g.bars[0].width).toBe(1)
    expect(g.bars[1].x + g.bars[1].width).toBeCloseTo(width - right)
    expect(g.now).toBe(width - right)
  })

  it('draws an empty plan with one lane and an end from what it has', () => {
    const g = timelineGeometry([], [], undefined)
    expect(g.bars).toEqual([])
    expect(g.end).toBe(1)
    expect(g.height).toBe(lane + axis)
    expect(timelineGeometry(plan, [], 0).end).toBe(90_000)
  })

  it('ticks the axis at round times', () => {
    expect(axisTicks(90_000)).toEqual([0, 15_000, 30_000, 45_000, 60_000, 75_000, 90_000])
    expect(axisTicks(5000)).toEqual([0, 1000, 2000, 3000, 4000, 5000])
    expect(axisTicks(0)).toEqual([0])
    expect(axisTicks(100 * 3_600_000).length).toBeLessThanOrEqual(7)
  })
})

describe('formatting', () => {
  it('writes durations in the largest sensible units', () => {
    const cases: [number | null | undefined, string][] = [
      [null, '–'], [undefined, '–'], [-1, '–'], [NaN, '–'],
      [0, '0 ms'], [850, '850 ms'], [2500, '2.5 sec'], [12_900, '12 sec'],
      [60_000, '1 min'], [65_000, '1 min 5 sec'], [3_600_000, '1 hr'], [3_720_000, '1 hr 2 min'],
    ]
    for (const [ms, want] of cases) expect(formatDuration(ms, 'en'), String(ms)).toBe(want)
  })
  it('writes axis times to the second, narrow', () => {
    const cases: [number, string][] = [[0, '0s'], [400, '0s'], [45_000, '45s'], [75_000, '1m 15s'], [120_000, '2m'], [3_660_000, '1h 1m'], [-1, '–'], [NaN, '–']]
    for (const [ms, want] of cases) expect(formatOffset(ms, 'en'), String(ms)).toBe(want)
  })
  it('writes durations in the reader\'s language', () => {
    expect(formatDuration(65_000, 'de')).not.toBe(formatDuration(65_000, 'en'))
    expect(formatDuration(2500, 'fr')).toContain('2,5')
  })
  it('writes probe values in their unit', () => {
    expect(formatProbeValue('class_delivery_ratio', 0.995, 'en')).toBe('99.5%')
    expect(formatProbeValue('readiness_ratio', 1, 'en')).toBe('100%')
    expect(formatProbeValue('run_latency_p99_ms', 812.4, 'en')).toBe('812 ms')
    expect(formatProbeValue('run_latency_p99_ms', Infinity, 'en')).toBe('–')
  })
  it('reads started_at as RFC 3339', () => {
    expect(startedMs('2026-12-07T16:00:00Z')).toBe(Date.UTC(2026, 11, 7, 16))
    expect(startedMs('yesterday')).toBeUndefined()
    expect(startedMs(undefined)).toBeUndefined()
  })
})

describe('chaos strings', () => {
  // Keys the page builds from data (states, error codes, probes, fault
  // events) escape the i18n test's scan of t('…'): check them here.
  const locales = ['en', 'es', 'fr', 'de', 'pt', 'zh', 'ja', 'hi', 'ar', 'ru']
  it('has words for every state, error code, probe and event in every locale', () => {
    for (const code of locales) {
      const chaos = JSON.parse(readFileSync(join(__dirname, '..', 'src', 'locales', 'operator', `${code}.json`), 'utf8')).operator.chaos
      for (const s of [...STATES, 'unknown']) expect(chaos.states[s], `${code}: state ${s}`).toBeTruthy()
      for (const e of ERROR_CODES) expect(chaos.errors[e], `${code}: error ${e}`).toBeTruthy()
      for (const p of ['run_latency_p99_ms', 'class_delivery_ratio', 'readiness_ratio']) expect(chaos.probes[p], `${code}: probe ${p}`).toBeTruthy()
      for (const ev of ['applied', 'healed', 'healed_on_abort', 'failed']) expect(chaos.events[ev], `${code}: event ${ev}`).toBeTruthy()
      for (const c of ['answered', 'failed', 'skipped', 'in_class', 'failovers', 'reconnects']) expect(chaos.counters[c], `${code}: counter ${c}`).toBeTruthy()
    }
  })
})
