import { describe, expect, it } from 'vitest'
import { countByState, edgesOf, planStanding, poolChart, poolRows, wasteShare, type PoolStatus } from '../src/fleet'
import type { MinuteForecast } from '../src/forecast'

const T0 = Date.UTC(2031, 8, 1, 9, 0)
const MINUTE = 60_000

/** A pool as `GET /api/v1/sandbox/pools` describes it, with `over` changed. */
function pool(language: string, over: Partial<PoolStatus> = {}): PoolStatus {
  return {
    language, warm: 2, target: 3, wanted: 5, source: 'plan', budget_capped: true, planned: 5, planned_runs_per_minute: 4.5,
    observed_runs_per_minute: 1.25, operator_target: null, operator_until: null, hot: 7, cold: 1, warmed: 10, wasted: 2,
    used_warm_seconds: 90, wasted_warm_seconds: 30, ...over,
  }
}

describe('fleet', () => {
  it('lists every edge once, by region', () => {
    const edges = edgesOf({ regions: [
      { region: 'us-east', edges: [{ node_id: 'b', url: 'http://b' }] },
      { region: 'eu-west', edges: [{ node_id: 'a', url: 'http://a' }, { node_id: 'b', url: 'http://b' }] },
    ] })
    expect(edges).toEqual([{ url: 'http://a', region: 'eu-west', nodeId: 'a' }, { url: 'http://b', region: 'us-east', nodeId: 'b' }])
  })
  it('counts members by state, zero for states nobody is in', () => {
    expect(countByState([{ state: 'alive' }, { state: 'down' }, { state: 'alive' }])).toEqual({ alive: 2, suspect: 0, down: 1 })
  })
})

describe('fleet pool rows', () => {
  it('joins each pool\'s own figures with the starts read from /metrics', () => {
    const starts = new Map([['python', { hot: 9, cold: 3 }], ['rust', { hot: 0, cold: 2 }]])
    const base = new Map([['python', { hot: 3, cold: 1 }]])
    const [python, rust] = poolRows([pool('python')], starts, base, 120)
    expect(python).toEqual({
      language: 'python', warm: 2, target: 3, hot: 9, cold: 3, hotShare: 0.75, hotPerMinute: 3, coldPerMinute: 1,
      wanted: 5, source: 'plan', budgetCapped: true, planned: 5, observedPerMinute: 1.25, operatorUntilMs: undefined,
      warmed: 10, wasted: 2, wasteShare: 0.25,
    })
    // Started without a pool: starts only, none of a pool's figures.
    expect(rust.language).toBe('rust')
    expect([rust.source, rust.wanted, rust.warmed, rust.wasteShare]).toEqual([undefined, undefined, undefined, undefined])
  })

  it('reads when an operator\'s target ends', () => {
    const [row] = poolRows([pool('java', { source: 'operator', operator_target: 4, operator_until: '2031-09-01T10:00:00Z' })], undefined, undefined, 0)
    expect([row.source, row.operatorUntilMs]).toEqual(['operator', T0 + 60 * MINUTE])
    expect(poolRows([pool('java', { operator_until: 'soon' })], undefined, undefined, 0)[0].operatorUntilMs).toBeUndefined()
  })

  it('still reads an edge that names only sizes', () => {
    const [row] = poolRows([{ language: 'go', warm: 1, target: 1 }], undefined, undefined, 0)
    expect([row.warm, row.target, row.source, row.wasteShare]).toEqual([1, 1, undefined, undefined])
  })

  it('weighs waste by warm time, and has none before any warm time', () => {
    expect(wasteShare(90, 30)).toBe(0.25)
    expect(wasteShare(0, 12)).toBe(1)
    expect(wasteShare(0, 0)).toBeUndefined()
    expect(wasteShare(undefined, undefined)).toBeUndefined()
  })
})

describe('fleet pool chart', () => {
  const minutes: MinuteForecast[] = [0, 1, 2].map((i) => ({
    at: new Date(T0 + i * MINUTE).toISOString(), planned_runs: 1, expected_runs: 2, warm_target: 3, planned_target: 2, actual_runs: i < 2 ? i : null,
  }))

  it('marks the edge\'s warm containers and target at the current minute only', () => {
    const chart = poolChart(minutes, T0 + MINUTE + 1, { warm: 4, target: 6 })
    expect(chart.nowIndex).toBe(1)
    expect(chart.warmNow).toEqual([null, 4, null])
    expect(chart.targetNow).toEqual([null, 6, null])
    // 3 minutes of 4 lines, 2 actual runs, 2 markers.
    expect(chart.points).toBe(3 * 4 + 2 + 2)
  })

  it('draws the forecast without markers when the edge has no pool for the language, or now is outside', () => {
    expect(poolChart(minutes, T0 + MINUTE).warmNow).toEqual([null, null, null])
    expect(poolChart(minutes, T0 + 10 * MINUTE, { warm: 1, target: 1 }).points).toBe(3 * 4 + 2)
    expect(poolChart([], T0, { warm: 1, target: 1 }).points).toBe(0)
  })
})

describe('fleet plan standing', () => {
  const plan = { generated_at: '2031-09-01T08:59:30Z', from: '2031-09-01T09:00:00Z', minutes: 90, fetched_at: '2031-09-01T09:00:05Z', last_error: null }

  it('reads the plan\'s times and whether it still covers now', () => {
    expect(planStanding(plan, T0 + 10 * MINUTE)).toEqual({
      state: 'current', generatedMs: T0 - 30_000, fetchedMs: T0 + 5_000, untilMs: T0 + 90 * MINUTE, error: undefined,
    })
    expect(planStanding(plan, T0 + 90 * MINUTE).state).toBe('expired')
  })

  it('names a failed fetch, with or without a plan kept', () => {
    expect(planStanding({ ...plan, last_error: 'control plane unreachable' }, T0).error).toBe('control plane unreachable')
    const none = { generated_at: null, from: null, minutes: null, fetched_at: null, last_error: 'HTTP 503' }
    expect(planStanding(none, T0)).toEqual({ state: 'none', generatedMs: undefined, fetchedMs: undefined, untilMs: undefined, error: 'HTTP 503' })
    expect(planStanding(undefined, T0).state).toBe('none')
  })
})
