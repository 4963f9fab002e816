import { describe, expect, it } from 'vitest'
import { audioFigures, audioReadingOf, AudioTracker, histogramIfAny, intervalPercentiles, perSecond, restartedBetween, sumOf } from '../src/audio-metrics'
import { parsePrometheus } from '../src/metrics'

const JOIN_BOUNDS = ['0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']
const JITTER_BOUNDS = ['0.001', '0.0025', '0.005', '0.01', '0.02', '0.04', '0.08', '0.16', '0.32', '+Inf']
const LOSS_BOUNDS = ['0', '0.005', '0.01', '0.02', '0.05', '0.1', '0.2', '0.5', '1', '+Inf']

interface Edge {
  peers: number; published: number; relayedPublishers: number; subscriptions: number
  packets: number; bytes: number; relaySent: number; relayIn: number; reaped: number
  drops: Record<string, number>
  /** Observations per bucket (not cumulative), one number per bound. */
  join: number[]; jitter: number[]; loss: number[]
}

const ZERO: Edge = {
  peers: 0, published: 0, relayedPublishers: 0, subscriptions: 0, packets: 0, bytes: 0, relaySent: 0, relayIn: 0, reaped: 0,
  drops: { muted: 0, rate: 0, relay: 0 }, join: JOIN_BOUNDS.map(() => 0), jitter: JITTER_BOUNDS.map(() => 0), loss: LOSS_BOUNDS.map(() => 0),
}

/** `n` observations in bucket `i` of `bounds`, none elsewhere. */
const at = (bounds: string[], i: number, n: number) => bounds.map((_, j) => (j === i ? n : 0))
const plus = (a: number[], b: number[]) => a.map((x, i) => x + b[i])

/** An edge's `/metrics` as the prometheus crate writes it (constant labels sorted in), with `lines` of other series. */
function text(e: Edge, lines = ''): string {
  const L = 'region="eu-west",role="edge"'
  const histogram = (name: string, bounds: string[], per: number[]) => {
    let cumulative = 0
    const buckets = bounds.map((le, i) => { cumulative += per[i]; return `${name}_bucket{${L},le="${le}"} ${cumulative}` })
    return `# TYPE ${name} histogram\n${buckets.join('\n')}\n${name}_sum{${L}} 0\n${name}_count{${L}} ${cumulative}`
  }
  return `# HELP lyceum_media_peers peer connections on this edge
# TYPE lyceum_media_peers gauge
lyceum_media_peers{${L}} ${e.peers}
lyceum_media_published_tracks{${L}} ${e.published}
lyceum_media_relayed_publishers{${L}} ${e.relayedPublishers}
lyceum_media_relay_subscriptions{${L}} ${e.subscriptions}
# TYPE lyceum_media_forwarded_packets_total counter
lyceum_media_forwarded_packets_total{${L}} ${e.packets}
lyceum_media_forwarded_bytes_total{${L}} ${e.bytes}
lyceum_media_relay_sent_packets_total{${L}} ${e.relaySent}
lyceum_media_relayed_in_packets_total{${L}} ${e.relayIn}
lyceum_media_reaped_peers_total{${L}} ${e.reaped}
${Object.entries(e.drops).map(([reason, n]) => `lyceum_media_dropped_packets_total{reason="${reason}",${L}} ${n}`).join('\n')}
${histogram('lyceum_media_join_seconds', JOIN_BOUNDS, e.join)}
${histogram('lyceum_media_rtcp_jitter_seconds', JITTER_BOUNDS, e.jitter)}
${histogram('lyceum_media_rtcp_loss_ratio', LOSS_BOUNDS, e.loss)}
${lines}`
}

const read = (t: string, ms: number) => audioReadingOf(parsePrometheus(t), ms)

/** An edge before and 3 s after a class's audio got going. */
const BEFORE: Edge = {
  ...ZERO, peers: 2, published: 1, packets: 1000, bytes: 100_000, relaySent: 40, relayIn: 10, reaped: 1,
  drops: { muted: 5, rate: 0, relay: 2 }, join: at(JOIN_BOUNDS, 2, 3), jitter: at(JITTER_BOUNDS, 0, 50), loss: at(LOSS_BOUNDS, 0, 50),
}
const AFTER: Edge = {
  ...BEFORE, peers: 12, published: 3, relayedPublishers: 2, subscriptions: 4,
  packets: 1000 + 1500, bytes: 100_000 + 150_000, relaySent: 40 + 300, relayIn: 10 + 600, reaped: 2,
  drops: { muted: 5 + 30, rate: 3, relay: 2 },
  // 10 joins in (0.1, 0.25]; 10 jitter reports in (0.0025, 0.005] and 10 in (0.01, 0.02];
  // 18 loss reports of 0 and 2 in (0.02, 0.05].
  join: plus(BEFORE.join, at(JOIN_BOUNDS, 3, 10)),
  jitter: plus(plus(BEFORE.jitter, at(JITTER_BOUNDS, 2, 10)), at(JITTER_BOUNDS, 4, 10)),
  loss: plus(plus(BEFORE.loss, at(LOSS_BOUNDS, 0, 18)), at(LOSS_BOUNDS, 4, 2)),
}

describe('audio readings', () => {
  it('reads the gauges, counters, drops by reason and histograms of one /metrics', () => {
    const r = read(text(AFTER), 7)
    expect([r.at, r.peers, r.published, r.relayedPublishers, r.relaySubscriptions]).toEqual([7, 12, 3, 2, 4])
    expect([r.forwardedPackets, r.forwardedBytes, r.relaySent, r.relayedIn, r.reaped]).toEqual([2500, 250_000, 340, 610, 2])
    expect(Object.fromEntries(r.dropped)).toEqual({ muted: 35, rate: 3, relay: 2 })
    expect(r.join?.count).toBe(13)
    expect(r.loss?.buckets[0]).toEqual([0, 68]) // le="0" is a bound like any other
  })

  it('tells a missing series from a zero one', () => {
    const samples = parsePrometheus('lyceum_media_peers{region="a"} 0\nlyceum_media_peers{region="b"} 2\n')
    expect(sumOf(samples, 'lyceum_media_peers')).toBe(2)
    expect(sumOf(samples, 'lyceum_media_published_tracks')).toBeUndefined()
    expect(histogramIfAny(samples, 'lyceum_media_join_seconds')).toBeUndefined()
    expect(histogramIfAny(parsePrometheus(text(ZERO)), 'lyceum_media_join_seconds')?.count).toBe(0)
  })
})

describe('audio figures', () => {
  it('shows only the gauges on the first reading', () => {
    const f = audioFigures(undefined, read(text(AFTER), 3000))
    expect(f).toMatchObject({ present: true, seconds: undefined, restarted: false, peers: 12, published: 3, relayedPublishers: 2, relaySubscriptions: 4 })
    expect([f.forwardedPps, f.forwardedKbps, f.relaySentPps, f.relayInPps, f.reapedPerSecond, f.dropsPerSecond]).toEqual([undefined, undefined, undefined, undefined, undefined, undefined])
    expect(f.drops).toEqual([{ reason: 'muted', perSecond: undefined }, { reason: 'rate', perSecond: undefined }, { reason: 'relay', perSecond: undefined }])
    expect([f.join, f.jitter, f.loss]).toEqual([{}, {}, {}])
  })

  it('gives per-second rates and interval percentiles between two readings', () => {
    const f = audioFigures(read(text(BEFORE), 10_000), read(text(AFTER), 13_000))
    expect(f).toMatchObject({ present: true, seconds: 3, restarted: false, peers: 12 })
    expect(f.forwardedPps).toBe(500)
    expect(f.forwardedKbps).toBe(400) // 50 000 B/s = 400 kbit/s
    expect([f.relaySentPps, f.relayInPps]).toEqual([100, 200])
    expect(f.reapedPerSecond).toBeCloseTo(1 / 3)
    expect(f.drops).toEqual([{ reason: 'muted', perSecond: 10 }, { reason: 'rate', perSecond: 1 }, { reason: 'relay', perSecond: 0 }])
    expect(f.dropsPerSecond).toBe(11)
    // Only the interval's 10 joins, all in (0.1, 0.25]: the 3 before do not count.
    expect(f.join.p50).toBeCloseTo(0.175)
    expect(f.join.p95).toBeCloseTo(0.2425)
    expect(f.jitter.p50).toBeCloseTo(0.005)
    expect(f.jitter.p95).toBeCloseTo(0.019)
    expect(f.loss.p50).toBe(0)
    expect(f.loss.p95).toBeCloseTo(0.035)
  })

  it('has no percentiles for an interval without observations, and zero rates when nothing moved', () => {
    const f = audioFigures(read(text(AFTER), 0), read(text(AFTER), 3000))
    expect([f.join, f.jitter, f.loss]).toEqual([{ p50: undefined, p95: undefined }, { p50: undefined, p95: undefined }, { p50: undefined, p95: undefined }])
    expect([f.forwardedPps, f.forwardedKbps, f.dropsPerSecond]).toEqual([0, 0, 0])
  })

  it('counts from the restart when the edge restarted in between, even for series that grew', () => {
    const restarted: Edge = {
      ...ZERO, peers: 1, packets: 300, bytes: 30_000,
      // More relay copies than before the restart: still all since it.
      relaySent: 600, drops: { muted: 6, rate: 0, relay: 0 }, join: at(JOIN_BOUNDS, 0, 2),
    }
    const prev = read(text(AFTER), 0)
    const cur = read(text(restarted), 3000)
    expect(restartedBetween(prev, cur)).toBe(true)
    expect(restartedBetween(read(text(BEFORE), 0), read(text(AFTER), 3000))).toBe(false)
    const f = audioFigures(prev, cur)
    expect(f.restarted).toBe(true)
    expect([f.forwardedPps, f.forwardedKbps, f.relaySentPps, f.relayInPps]).toEqual([100, 80, 200, 0])
    expect(f.drops.map((d) => d.perSecond)).toEqual([2, 0, 0])
    // The two joins since the restart, in the first bucket (from 0).
    expect(f.join.p50).toBeCloseTo(0.0125)
    expect(f.jitter).toEqual({ p50: undefined, p95: undefined })
  })

  it('shows nothing but gaps for an edge with audio off', () => {
    const off = 'lyceum_http_requests_total{route="/healthz"} 4\nlyceum_ready 1\n'
    const f = audioFigures(read(off, 0), read(off, 3000))
    expect(f.present).toBe(false)
    expect([f.peers, f.published, f.relayedPublishers, f.relaySubscriptions]).toEqual([undefined, undefined, undefined, undefined])
    expect([f.forwardedPps, f.forwardedKbps, f.relaySentPps, f.relayInPps, f.reapedPerSecond, f.dropsPerSecond]).toEqual([undefined, undefined, undefined, undefined, undefined, undefined])
    expect(f.drops.map((d) => d.perSecond)).toEqual([undefined, undefined, undefined])
    expect([f.join, f.jitter, f.loss]).toEqual([{}, {}, {}])
  })

  it('shows what an older build exposes and gaps for the rest', () => {
    // No relay series, no histograms, drops without the relay reason.
    const older = (packets: number, muted: number) => `lyceum_media_peers 3
lyceum_media_published_tracks 1
lyceum_media_forwarded_packets_total ${packets}
lyceum_media_forwarded_bytes_total ${packets * 100}
lyceum_media_dropped_packets_total{reason="muted"} ${muted}
lyceum_media_dropped_packets_total{reason="rate"} 0
`
    const f = audioFigures(read(older(100, 1), 0), read(older(400, 4), 3000))
    expect(f).toMatchObject({ present: true, peers: 3, published: 1, relayedPublishers: undefined, relaySubscriptions: undefined })
    expect([f.forwardedPps, f.forwardedKbps, f.relaySentPps, f.relayInPps, f.reapedPerSecond]).toEqual([100, 80, undefined, undefined, undefined])
    expect(f.drops).toEqual([{ reason: 'muted', perSecond: 1 }, { reason: 'rate', perSecond: 0 }, { reason: 'relay', perSecond: undefined }])
    expect(f.dropsPerSecond).toBe(1)
    expect([f.join, f.jitter, f.loss]).toEqual([{}, {}, {}])
  })

  it('lists a reason a newer edge names after the known ones', () => {
    const extra = (n: number) => text(AFTER, `lyceum_media_dropped_packets_total{reason="zz_new"} ${n}\nlyceum_media_dropped_packets_total{reason="a_new"} ${n}\n`)
    const f = audioFigures(read(extra(0), 0), read(extra(6), 2000))
    expect(f.drops.map((d) => [d.reason, d.perSecond])).toEqual([['muted', 0], ['rate', 0], ['relay', 0], ['a_new', 3], ['zz_new', 3]])
    expect(f.dropsPerSecond).toBe(6)
  })

  it('gives no rates without time between the readings', () => {
    expect(perSecond(1, 4, 0, false)).toBeUndefined()
    expect(perSecond(undefined, 4, 3, false)).toBeUndefined()
    expect(perSecond(1, undefined, 3, false)).toBeUndefined()
    expect(perSecond(1, 4, 3, false)).toBe(1)
    expect(perSecond(9, 6, 3, true)).toBe(2)
    expect(audioFigures(read(text(BEFORE), 5), read(text(AFTER), 5)).forwardedPps).toBeUndefined()
    expect(intervalPercentiles(undefined, read(text(AFTER), 0).join, false)).toEqual({})
  })
})

describe('audio tracker', () => {
  it('rates each edge against its own last reading, and starts over after a miss', () => {
    const t = new AudioTracker()
    expect(t.add('a', parsePrometheus(text(BEFORE)), 0)?.forwardedPps).toBeUndefined()
    expect(t.add('b', parsePrometheus(text(AFTER)), 0)?.forwardedPps).toBeUndefined()
    expect(t.add('a', parsePrometheus(text(AFTER)), 3000)?.forwardedPps).toBe(500)
    expect(t.add('b', undefined, 3000)).toBeUndefined() // its metrics did not answer
    expect(t.add('b', parsePrometheus(text(AFTER)), 6000)?.forwardedPps).toBeUndefined() // a baseline again
    expect(t.add('b', parsePrometheus(text(AFTER)), 9000)?.forwardedPps).toBe(0)
    t.forget('a')
    expect(t.add('a', parsePrometheus(text(AFTER)), 9000)?.seconds).toBeUndefined()
  })
})
