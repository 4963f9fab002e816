import { describe, expect, it } from 'vitest'
import { countByState, edgesOf } from '../src/fleet'

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
