// An edge's live-audio figures for the operator's fleet page, from the same
// `/metrics` text as the latency charts: the SFU's gauges as they stand,
// its counters as per-second rates over the refresh interval, and p50/p95
// of its histograms over that interval (deltas of two readings, quantiles
// interpolated within buckets like `histogram_quantile`). An edge with
// audio off (`media.enabled = false`) or an older build exposes none or
// only some of these series; each missing figure is undefined, never zero.
import { deltaHistogram, histogramOf, quantile, type Histogram, type Sample } from './metrics'

export const MEDIA_PEERS = 'lyceum_media_peers'
export const MEDIA_PUBLISHED = 'lyceum_media_published_tracks'
export const MEDIA_RELAYED_PUBLISHERS = 'lyceum_media_relayed_publishers'
export const MEDIA_RELAY_SUBSCRIPTIONS = 'lyceum_media_relay_subscriptions'
export const MEDIA_FORWARDED_PACKETS = 'lyceum_media_forwarded_packets_total'
export const MEDIA_FORWARDED_BYTES = 'lyceum_media_forwarded_bytes_total'
export const MEDIA_RELAY_SENT = 'lyceum_media_relay_sent_packets_total'
export const MEDIA_RELAYED_IN = 'lyceum_media_relayed_in_packets_total'
export const MEDIA_DROPPED = 'lyceum_media_dropped_packets_total'
export const MEDIA_REAPED = 'lyceum_media_reaped_peers_total'
export const MEDIA_JOIN = 'lyceum_media_join_seconds'
export const MEDIA_JITTER = 'lyceum_media_rtcp_jitter_seconds'
export const MEDIA_LOSS = 'lyceum_media_rtcp_loss_ratio'

/** The drop reasons an edge names today, in the page's order; a newer edge's others follow, sorted. */
export const DROP_REASONS = ['muted', 'rate', 'relay'] as const

/** One reading of an edge's audio series, taken at `at` (unix ms); a series the edge does not expose is undefined. */
export interface AudioReading {
  at: number
  peers?: number
  published?: number
  relayedPublishers?: number
  relaySubscriptions?: number
  forwardedPackets?: number
  forwardedBytes?: number
  relaySent?: number
  relayedIn?: number
  reaped?: number
  /** `lyceum_media_dropped_packets_total` by `reason`; empty without the series. */
  dropped: Map<string, number>
  join?: Histogram
  jitter?: Histogram
  loss?: Histogram
}

/** The sum of every series named `name`; undefined when there is none. */
export function sumOf(samples: Sample[], name: string): number | undefined {
  let found = false
  let sum = 0
  for (const s of samples) {
    if (s.name !== name) continue
    found = true
    sum += s.value
  }
  return found ? sum : undefined
}

/** The histogram `name` summed over its series, or undefined when the edge has no such histogram. */
export function histogramIfAny(samples: Sample[], name: string): Histogram | undefined {
  return samples.some((s) => s.name === `${name}_count`) ? histogramOf(samples, name) : undefined
}

/** Reads the audio series out of one parse of an edge's `/metrics`. */
export function audioReadingOf(samples: Sample[], at: number): AudioReading {
  const dropped = new Map<string, number>()
  for (const s of samples) {
    if (s.name !== MEDIA_DROPPED) continue
    const reason = s.labels.reason ?? ''
    dropped.set(reason, (dropped.get(reason) ?? 0) + s.value)
  }
  return {
    at,
    peers: sumOf(samples, MEDIA_PEERS),
    published: sumOf(samples, MEDIA_PUBLISHED),
    relayedPublishers: sumOf(samples, MEDIA_RELAYED_PUBLISHERS),
    relaySubscriptions: sumOf(samples, MEDIA_RELAY_SUBSCRIPTIONS),
    forwardedPackets: sumOf(samples, MEDIA_FORWARDED_PACKETS),
    forwardedBytes: sumOf(samples, MEDIA_FORWARDED_BYTES),
    relaySent: sumOf(samples, MEDIA_RELAY_SENT),
    relayedIn: sumOf(samples, MEDIA_RELAYED_IN),
    reaped: sumOf(samples, MEDIA_REAPED),
    dropped,
    join: histogramIfAny(samples, MEDIA_JOIN),
    jitter: histogramIfAny(samples, MEDIA_JITTER),
    loss: histogramIfAny(samples, MEDIA_LOSS),
  }
}

/** The counters of a reading, each with the key it has there (drops as `dropped:<reason>`). */
function counters(r: AudioReading): Map<string, number> {
  const out = new Map<string, number>()
  const put = (key: string, value: number | undefined) => { if (value !== undefined) out.set(key, value) }
  put('forwardedPackets', r.forwardedPackets)
  put('forwardedBytes', r.forwardedBytes)
  put('relaySent', r.relaySent)
  put('relayedIn', r.relayedIn)
  put('reaped', r.reaped)
  for (const [reason, n] of r.dropped) put(`dropped:${reason}`, n)
  put('join', r.join?.count)
  put('jitter', r.jitter?.count)
  put('loss', r.loss?.count)
  return out
}

/**
 * Whether the edge's process restarted between two readings: some counter
 * (or histogram count) went down. Counters only grow in one process, so
 * then every series counts from zero again and `cur` itself is the interval.
 */
export function restartedBetween(prev: AudioReading, cur: AudioReading): boolean {
  const before = counters(prev)
  for (const [key, n] of counters(cur)) {
    const b = before.get(key)
    if (b !== undefined && n < b) return true
  }
  return false
}

/**
 * Per second between two readings `seconds` apart; after a restart `cur`
 * counts since it. Undefined when the series is missing from either
 * reading or there is no time between them.
 */
export function perSecond(prev: number | undefined, cur: number | undefined, seconds: number, restarted: boolean): number | undefined {
  if (prev === undefined || cur === undefined || !(seconds > 0)) return undefined
  return (restarted ? cur : Math.max(0, cur - prev)) / seconds
}

/** p50 and p95 of one interval; undefined when nothing was observed or the series is missing. */
export interface Percentiles { p50?: number; p95?: number }

/** p50 and p95 of what a histogram observed between two readings. */
export function intervalPercentiles(prev: Histogram | undefined, cur: Histogram | undefined, restarted: boolean): Percentiles {
  if (!prev || !cur) return {}
  const h = deltaHistogram(restarted ? undefined : prev, cur)
  return { p50: quantile(h, 0.5), p95: quantile(h, 0.95) }
}

/** An edge's live-audio figures for the operator's page. */
export interface AudioFigures {
  /** Whether the edge exposes any of the audio series (it does not with audio off, or on an older build). */
  present: boolean
  /** Seconds the rates and percentiles cover; undefined on the first reading (the baseline). */
  seconds?: number
  /** The edge restarted in the interval: rates and percentiles count from its start. */
  restarted: boolean
  /** Now: peer connections, local publishers, other edges' publishers heard here, (room, edge) pairs relayed to. */
  peers?: number
  published?: number
  relayedPublishers?: number
  relaySubscriptions?: number
  /** Per second over the interval. */
  forwardedPps?: number
  /** Forwarded bytes as kilobits per second (1 kbit = 1000 bits). */
  forwardedKbps?: number
  relaySentPps?: number
  relayInPps?: number
  reapedPerSecond?: number
  /** Dropped packets per second by reason: the known reasons always (undefined when the edge does not count one), then any others it names. */
  drops: { reason: string; perSecond?: number }[]
  /** Every reason the edge counts, together, per second; undefined when it counts none (or on a first reading). */
  dropsPerSecond?: number
  /** Offer to connected, in seconds. */
  join: Percentiles
  /** Jitter listeners report, in seconds. */
  jitter: Percentiles
  /** Fraction of packets listeners report lost, 0..1. */
  loss: Percentiles
}

/** Whether a reading holds any audio series at all. */
function hasAudio(r: AudioReading): boolean {
  return [r.peers, r.published, r.relayedPublishers, r.relaySubscriptions, r.forwardedPackets, r.forwardedBytes, r.relaySent, r.relayedIn, r.reaped, r.join, r.jitter, r.loss]
    .some((v) => v !== undefined) || r.dropped.size > 0
}

/**
 * The figures of the interval from `prev` to `cur` (readings of one edge);
 * without `prev` only the gauges, the rest waits for the next reading.
 */
export function audioFigures(prev: AudioReading | undefined, cur: AudioReading): AudioFigures {
  const seconds = prev ? (cur.at - prev.at) / 1000 : undefined
  const restarted = prev ? restartedBetween(prev, cur) : false
  const rate = (pick: (r: AudioReading) => number | undefined) => (prev && seconds !== undefined ? perSecond(pick(prev), pick(cur), seconds, restarted) : undefined)
  const forwardedBytesPerSecond = rate((r) => r.forwardedBytes)
  const reasons = [...DROP_REASONS, ...[...cur.dropped.keys()].filter((r) => !(DROP_REASONS as readonly string[]).includes(r)).sort()]
  const drops = reasons.map((reason) => ({ reason, perSecond: rate((r) => r.dropped.get(reason)) }))
  const known = drops.filter((d) => d.perSecond !== undefined)
  const dropsPerSecond = known.length > 0 ? known.reduce((n, d) => n + d.perSecond!, 0) : undefined
  return {
    present: hasAudio(cur),
    seconds: seconds !== undefined && seconds > 0 ? seconds : undefined,
    restarted,
    peers: cur.peers,
    published: cur.published,
    relayedPublishers: cur.relayedPublishers,
    relaySubscriptions: cur.relaySubscriptions,
    forwardedPps: rate((r) => r.forwardedPackets),
    forwardedKbps: forwardedBytesPerSecond === undefined ? undefined : (forwardedBytesPerSecond * 8) / 1000,
    relaySentPps: rate((r) => r.relaySent),
    relayInPps: rate((r) => r.relayedIn),
    reapedPerSecond: rate((r) => r.reaped),
    drops,
    dropsPerSecond,
    join: intervalPercentiles(prev?.join, cur.join, restarted),
    jitter: intervalPercentiles(prev?.jitter, cur.jitter, restarted),
    loss: intervalPercentiles(prev?.loss, cur.loss, restarted),
  }
}

/**
 * Keeps each edge's last reading and turns the next one into figures. An
 * edge whose metrics did not answer loses its baseline: its next reading
 * is a first one again.
 */
export class AudioTracker {
  private last = new Map<string, AudioReading>()

  /** The edge's figures from this reading (`samples` undefined: its metrics did not answer, so none). */
  add(edge: string, samples: Sample[] | undefined, at: number): AudioFigures | undefined {
    if (!samples) { this.last.delete(edge); return undefined }
    const cur = audioReadingOf(samples, at)
    const prev = this.last.get(edge)
    this.last.set(edge, cur)
    return audioFigures(prev, cur)
  }

  /** Drops an edge's baseline (it did not answer). */
  forget(edge: string): void { this.last.delete(edge) }
}
