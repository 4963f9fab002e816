// Nearest-region choice: ask any node for GET /api/v1/regions, measure our own
// RTT to each healthy region's edge, use the nearest, and fail over to the
// next one when it stops answering. Pure logic with injected fetch and clock
// so that vitest can drive it.

export interface RegionEdge { node_id: string; state: string; url: string }
export interface Region { region: string; healthy: boolean; edges: RegionEdge[] }
export interface Candidate { region: string; url: string; rttMs: number }

export type Fetcher = (url: string, init?: { signal?: AbortSignal }) => Promise<{ ok: boolean; json(): Promise<any> }>

/** The healthy regions' alive edges, one entry per edge. */
export function candidates(regions: Region[]): { region: string; url: string }[] {
  return regions
    .filter((r) => r.healthy)
    .flatMap((r) => r.edges.filter((e) => e.state === 'alive').map((e) => ({ region: r.region, url: e.url })))
}

/** Sorts measured candidates nearest first; unreachable ones are dropped. */
export function rank(measured: Candidate[]): Candidate[] {
  return measured
    .filter((c) => Number.isFinite(c.rttMs))
    .sort((a, b) => a.rttMs - b.rttMs || a.region.localeCompare(b.region))
}

/**
 * Puts the edges of the `pinned` region first, the rest after them nearest
 * first: a learner who chose a region gets it while it is healthy, and
 * still fails over to the nearest others when it is not. Unknown or absent
 * `pinned` leaves the ranking as it is.
 */
export function prefer(ranked: Candidate[], pinned: string | undefined): Candidate[] {
  if (!pinned || !ranked.some((c) => c.region === pinned)) return ranked
  return [...ranked.filter((c) => c.region === pinned), ...ranked.filter((c) => c.region !== pinned)]
}

/** Measures the RTT to `url` (best of `samples` GET /healthz); Infinity when unreachable. */
export async function measure(url: string, fetcher: Fetcher, now: () => number, samples = 3): Promise<number> {
  let best = Infinity
  for (let i = 0; i < samples; i++) {
    const start = now()
    try {
      const res = await fetcher(`${url}/healthz`)
      if (!res.ok) continue
      best = Math.min(best, now() - start)
    } catch {
      // unreachable this time
    }
  }
  return best
}

/** Keeps the ranked edges and which one is in use; `failover` moves to the next. */
export class RegionChooser {
  ranked: Candidate[] = []
  /** A region the user chose over the nearest one (see [`prefer`]). */
  pinned: string | undefined
  private index = 0

  constructor(private fetcher: Fetcher, private now: () => number = () => performance.now()) {}

  /**
   * Asks the first of `seeds` that answers for the regions and ranks their
   * edges by our RTT. Several seeds, because the edge that served the page
   * may be the one that died (see [`seeds`]).
   */
  async discover(seeds: string | string[]): Promise<Candidate | undefined> {
    let body: any
    for (const seed of typeof seeds === 'string' ? [seeds] : seeds) {
      try {
        const res = await this.fetcher(`${seed}/api/v1/regions`)
        if (res.ok) {
          body = await res.json()
          break
        }
      } catch {
        // unreachable: ask the next one
      }
    }
    if (!body) throw new Error('regions_unavailable')
    const list = candidates(body.regions ?? [])
    // One at a time: parallel probes would queue behind each other and skew the RTTs.
    const measured: Candidate[] = []
    for (const c of list) measured.push({ ...c, rttMs: await measure(c.url, this.fetcher, this.now) })
    this.ranked = prefer(rank(measured), this.pinned)
    this.index = 0
    return this.current()
  }

  /** Where to ask for the regions: `first`, then every edge ranked last time, each once. */
  seeds(first: string[]): string[] {
    return [...new Set([...first, ...this.ranked.map((c) => c.url)])]
  }

  current(): Candidate | undefined {
    return this.ranked[this.index]
  }

  /** The next nearest edge after a failure, or undefined when none is left. */
  failover(): Candidate | undefined {
    if (this.index < this.ranked.length) this.index++
    return this.current()
  }

  /** Runs `op` on the current edge, failing over on network errors. */
  async withFailover<T>(op: (edge: Candidate) => Promise<T>): Promise<T> {
    let edge = this.current()
    let lastError: unknown = new Error('no_region')
    while (edge) {
      try {
        return await op(edge)
      } catch (e) {
        if (!(e instanceof TypeError)) throw e
        lastError = e
        edge = this.failover()
      }
    }
    throw lastError
  }
}
