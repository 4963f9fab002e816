import { describe, expect, it } from 'vitest'
import { afterClose, apply, emptyState, joinFrame } from '../src/live'

describe('live class state', () => {
  it('folds a snapshot then events, and ignores an event seen twice', () => {
    const s = emptyState()
    apply(s, { type: 'welcome', seq: 3, role: 'instructor', region: 'eu-west', node_id: 'n', epoch: 1, resumed: false })
    apply(s, { type: 'snapshot', seq: 3, state: { roster: [{ user_id: 'u1', name: 'Ada', role: 'learner', status: 'active', hand: false }], assignments: [], recent: [{ seq: 2, kind: { type: 'chat', name: 'Ada', text: 'hi' } }] } })
    expect(s.seq).toBe(3)
    expect(s.feed.map((f) => f.text)).toEqual(['hi'])
    apply(s, { type: 'hand', seq: 4, user_id: 'u1', raised: true })
    apply(s, { type: 'chat', seq: 5, name: 'Ada', text: 'question' })
    apply(s, { type: 'chat', seq: 5, name: 'Ada', text: 'question' })
    apply(s, { type: 'chat', seq: 4, name: 'Ada', text: 'old' })
    expect(s.roster.u1.hand).toBe(true)
    expect(s.feed.map((f) => f.text)).toEqual(['hi', 'question'])
    apply(s, { type: 'assignment', seq: 9, assignment_id: 'a1', title: 'Sum', language: 'python' })
    expect(s.assignments.map((a) => a.title)).toEqual(['Sum'])
    expect(s.seq).toBe(9)
  })
  it('an error reply does not move the position', () => {
    const s = emptyState()
    apply(s, { type: 'chat', seq: 2, text: 'x' })
    apply(s, { type: 'error', seq: 2, code: 'rate_limited', message: 'slow down' })
    expect(s.seq).toBe(2)
    expect(s.error).toContain('rate_limited')
  })
  it('resumes from the last event after a close, elsewhere when the node is full or gone', () => {
    expect(joinFrame('t', 0)).toEqual({ type: 'join', ticket: 't' })
    expect(joinFrame('t', 41)).toEqual({ type: 'join', ticket: 't', last_seq: 41 })
    expect(afterClose(4010)).toBe('stop')
    expect(afterClose(4011)).toBe('same')
    expect(afterClose(4008)).toBe('same')
    expect(afterClose(4014)).toBe('next')
    expect(afterClose(1006)).toBe('next')
  })
})
