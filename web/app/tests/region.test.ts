import { describe, expect, it } from 'vitest'
import { RegionChooser, candidates, prefer, rank } from '../src/region'

const regions = {
  regions: [
    { region: 'ap-south', healthy: true, edges: [{ node_id: 'a', state: 'alive', url: 'http://ap' }] },
    { region: 'eu-west', healthy: true, edges: [{ node_id: 'e', state: 'alive', url: 'http://eu' }] },
    { region: 'us-east', healthy: true, edges: [{ node_id: 'u', state: 'alive', url: 'http://us' }] },
    { region: 'sa-east', healthy: false, edges: [{ node_id: 's', state: 'alive', url: 'http://sa' }] },
  ],
}

/** A fake network: each host answers after its delay on a fake clock; `down` hosts throw. */
function network(delays: Record<string, number>, down = new Set<string>()) {
  let clock = 0
  const fetcher = async (url: string) => {
    const host = new URL(url).host
    if (url.endsWith('/api/v1/regions')) return { ok: true, json: async () => regions }
    if (down.has(host)) throw new TypeError('network')
    clock += delays[host] ?? 1000
    return { ok: true, json: async () => ({}) }
  }
  return { fetcher, now: () => clock }
}

describe('region choice', () => {
  it('skips unhealthy regions and dead edges', () => {
    const list = candidates([...regions.regions, { region: 'x', healthy: true, edges: [{ node_id: 'd', state: 'dead', url: 'http://d' }] }])
    expect(list.map((c) => c.region)).toEqual(['ap-south', 'eu-west', 'us-east'])
  })

  it('ranks by RTT, ties by name, drops unreachable', () => {
    const r = rank([
      { region: 'b', url: '', rttMs: 5 },
      { region: 'a', url: '', rttMs: 5 },
      { region: 'c', url: '', rttMs: Infinity },
      { region: 'd', url: '', rttMs: 1 },
    ])
    expect(r.map((c) => c.region)).toEqual(['d', 'a', 'b'])
  })

  it('connects to the nearest measured region', async () => {
    const { fetcher, now } = network({ ap: 40, eu: 5, us: 20 })
    const chooser = new RegionChooser(fetcher, now)
    const edge = await chooser.discover('http://seed')
    expect(edge?.region).toBe('eu-west')
    expect(chooser.ranked.map((c) => c.region)).toEqual(['eu-west', 'us-east', 'ap-south'])
  })

  it('fails over to the next nearest on a network error, then runs out', async () => {
    const down = new Set<string>()
    const { fetcher, now } = network({ ap: 40, eu: 5, us: 20 }, down)
    const chooser = new RegionChooser(fetcher, now)
    await chooser.discover('http://seed')
    const used: string[] = []
    const result = await chooser.withFailover(async (edge) => {
      used.push(edge.region)
      if (edge.region !== 'ap-south') throw new TypeError('failed to fetch')
      return 'ok'
    })
    expect(result).toBe('ok')
    expect(used).toEqual(['eu-west', 'us-east', 'ap-south'])
    await expect(chooser.withFailover(async () => { throw new TypeError('x') })).rejects.toThrow()
  })

  it('does not fail over on application errors', async () => {
    const { fetcher, now } = network({ ap: 40, eu: 5, us: 20 })
    const chooser = new RegionChooser(fetcher, now)
    await chooser.discover('http://seed')
    await expect(chooser.withFailover(async () => { throw new Error('rate_limited') })).rejects.toThrow('rate_limited')
    expect(chooser.current()?.region).toBe('eu-west')
  })

  it('treats an edge that never answers as unreachable', async () => {
    const { fetcher, now } = network({ ap: 40, eu: 5, us: 20 }, new Set(['eu']))
    const chooser = new RegionChooser(fetcher, now)
    expect((await chooser.discover('http://seed'))?.region).toBe('us-east')
  })

  it('puts a chosen region first and keeps the others for failover', async () => {
    const { fetcher, now } = network({ ap: 40, eu: 5, us: 20 })
    const chooser = new RegionChooser(fetcher, now)
    chooser.pinned = 'ap-south'
    expect((await chooser.discover('http://seed'))?.region).toBe('ap-south')
    expect(chooser.ranked.map((c) => c.region)).toEqual(['ap-south', 'eu-west', 'us-east'])
    expect(chooser.failover()?.region).toBe('eu-west')
    // A pinned region that is not there (unhealthy, unknown) changes nothing.
    const ranked = [{ region: 'eu-west', url: 'http://eu', rttMs: 5 }]
    expect(prefer(ranked, 'sa-east')).toEqual(ranked)
    expect(prefer(ranked, undefined)).toEqual(ranked)
  })
})

describe('finding the regions again', () => {
  it('asks the edges ranked last time when the page’s own edge is gone', async () => {
    const gone = new Set<string>()
    let clock = 0
    const asked: string[] = []
    const fetcher = async (url: string) => {
      const host = new URL(url).host
      if (gone.has(host)) throw new TypeError('network')
      if (url.endsWith('/api/v1/regions')) {
        asked.push(host)
        return { ok: true, json: async () => regions }
      }
      clock += { ap: 40, eu: 5, us: 20 }[host] ?? 1000
      return { ok: true, json: async () => ({}) }
    }
    const chooser = new RegionChooser(fetcher, () => clock)
    chooser.pinned = 'eu-west'
    expect((await chooser.discover(chooser.seeds(['http://eu'])))?.region).toBe('eu-west')
    expect(chooser.seeds(['http://eu'])).toEqual(['http://eu', 'http://us', 'http://ap'])
    // eu dies (its region still listed as healthy for a moment): the next
    // seed answers, eu is unreachable and dropped, the nearest other wins.
    gone.add('eu')
    asked.length = 0
    expect((await chooser.discover(chooser.seeds(['http://eu'])))?.region).toBe('us-east')
    expect(asked).toEqual(['us'])
    expect(chooser.ranked.map((c) => c.region)).toEqual(['us-east', 'ap-south'])
    // Nobody answers: a clear error, not a hang.
    for (const h of ['us', 'ap']) gone.add(h)
    await expect(chooser.discover(chooser.seeds(['http://eu']))).rejects.toThrow('regions_unavailable')
  })
})
