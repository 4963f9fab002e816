import { describe, expect, it } from 'vitest'
import { afterClose, apply, assignTo, breakoutStartFrame, emptyState, feedFor, gridRows, joinFrame, roomOf, splitInto } from '../src/live'

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

  it('folds breakout rooms: started, room chat, the instructor message, resumed from a snapshot, ended', () => {
    const s = emptyState()
    apply(s, { type: 'welcome', seq: 1, role: 'learner', user_id: 'ada', region: 'eu-west', node_id: 'n', epoch: 1, resumed: false })
    expect(s.welcome?.user_id).toBe('ada')
    expect(roomOf(s, 'ada')).toBeUndefined()
    apply(s, { type: 'breakout_started', seq: 2, groups: [{ name: 'Room 1', members: ['ada', 'bo'] }, { name: 'Room 2', members: ['cy'] }] })
    expect(roomOf(s, 'ada')).toEqual({ name: 'Room 1', members: ['ada', 'bo'] })
    expect(roomOf(s, 'cy')?.name).toBe('Room 2')
    expect(roomOf(s, 'zed')).toBeUndefined()
    apply(s, { type: 'chat', seq: 3, name: 'Bo', text: 'in here', group: 'Room 1' })
    apply(s, { type: 'breakout_message', seq: 5, group: 'Room 1', text: 'five minutes' })
    apply(s, { type: 'chat', seq: 6, name: 'Teacher', text: 'to all' })
    expect(feedFor(s, 'Room 1').map((f) => f.text)).toEqual(['in here', 'five minutes'])
    expect(feedFor(s, undefined).map((f) => f.type)).toEqual(['breakout_started', 'chat'])
    // A resume that needs a snapshot: the learner's own room only.
    apply(s, { type: 'snapshot', seq: 7, state: { roster: [], breakout: [{ name: 'Room 1', members: ['ada', 'bo'] }], recent: [{ seq: 3, kind: { type: 'chat', name: 'Bo', text: 'in here', group: 'Room 1' } }] } })
    expect(s.breakout).toEqual([{ name: 'Room 1', members: ['ada', 'bo'] }])
    expect(feedFor(s, 'Room 1').length).toBe(1)
    apply(s, { type: 'breakout_ended', seq: 8 })
    expect(s.breakout).toBeUndefined()
    expect(roomOf(s, 'ada')).toBeUndefined()
    // A snapshot taken while not split clears any split.
    apply(s, { type: 'breakout_started', seq: 9, groups: [{ name: 'A', members: ['ada'] }] })
    apply(s, { type: 'snapshot', seq: 10, state: { roster: [], breakout: null } })
    expect(s.breakout).toBeUndefined()
  })
  it('splits learners into rooms round-robin and moves one between rooms', () => {
    const name = (n: number) => `Room ${n}`
    expect(splitInto(['a', 'b', 'c', 'd', 'e'], 2, name)).toEqual([{ name: 'Room 1', members: ['a', 'c', 'e'] }, { name: 'Room 2', members: ['b', 'd'] }])
    // Never more rooms than learners, never fewer than one.
    expect(splitInto(['a', 'b'], 5, name).length).toBe(2)
    expect(splitInto(['a'], 0, name)).toEqual([{ name: 'Room 1', members: ['a'] }])
    expect(splitInto([], 3, name)).toEqual([{ name: 'Room 1', members: [] }])
    expect(splitInto(Array.from({ length: 100 }, (_, i) => `u${i}`), 100, name).length).toBe(64)
    const moved = assignTo(splitInto(['a', 'b', 'c'], 2, name), 'a', 'Room 2')
    expect(moved).toEqual([{ name: 'Room 1', members: ['c'] }, { name: 'Room 2', members: ['b', 'a'] }])
    // The frame leaves empty rooms out.
    expect(breakoutStartFrame(assignTo(moved, 'c', 'Room 2'))).toEqual({ type: 'breakout_start', groups: [{ name: 'Room 2', members: ['b', 'a', 'c'] }] })
  })
})

describe('the submission grid', () => {
  it('folds the snapshot grid, then submissions as they start and finish', () => {
    const s = emptyState()
    apply(s, { type: 'snapshot', seq: 5, state: {
      roster: [
        { user_id: 'u2', name: 'Grace', role: 'learner', status: 'active' },
        { user_id: 'u1', name: 'Ada', role: 'learner', status: 'active' },
        { user_id: 'i', name: 'Prof', role: 'instructor', status: 'active' },
      ],
      assignments: [{ assignment_id: 'a1', title: 'Sum', language: 'python' }],
      grid: { a1: { u1: { verdict: 'wrong_answer', passed: 0, total: 1, run_id: 'r1', attempts: 1 } } },
      recent: [],
    } })
    expect(gridRows(s).map((r) => [r.name, r.cells.map((c) => c?.verdict)])).toEqual([['Ada', ['wrong_answer']], ['Grace', [undefined]]])
    apply(s, { type: 'submission_started', seq: 6, assignment_id: 'a1', user_id: 'u1', name: 'Ada' })
    expect(s.grid.a1.u1).toMatchObject({ verdict: 'running', attempts: 2 })
    apply(s, { type: 'submission', seq: 7, assignment_id: 'a1', user_id: 'u1', name: 'Ada', run_id: 'r2', verdict: 'accepted', passed: 1, total: 1, region: 'eu-west' })
    expect(s.grid.a1.u1).toEqual({ verdict: 'accepted', passed: 1, total: 1, attempts: 2, run_id: 'r2', region: 'eu-west' })
    // A second assignment adds a column; a learner who left keeps her row.
    apply(s, { type: 'assignment', seq: 8, assignment_id: 'a2', title: 'Max', language: 'python' })
    apply(s, { type: 'submission', seq: 9, assignment_id: 'a2', user_id: 'gone', name: 'Gone', run_id: 'r3', verdict: 'accepted', passed: 2, total: 2, region: 'us-east' })
    const rows = gridRows(s)
    expect(rows.map((r) => r.user_id)).toEqual(['u1', 'gone', 'u2'])
    expect(rows[0].cells.map((c) => c?.verdict)).toEqual(['accepted', undefined])
    expect(rows[1].cells.map((c) => c?.verdict)).toEqual([undefined, 'accepted'])
    // An event seen twice changes nothing.
    apply(s, { type: 'submission_started', seq: 6, assignment_id: 'a1', user_id: 'u1', name: 'Ada' })
    expect(s.grid.a1.u1.verdict).toBe('accepted')
  })

  it('rebuilds from a snapshot the same feed a page that stayed folded live', () => {
    const events = [
      { type: 'broadcast', seq: 1, text: 'hello, class' },
      { type: 'assignment', seq: 2, assignment_id: 'a1', title: 'Sum', language: 'python', instructions: '', starter: '', tests_count: 1 },
      { type: 'presence', seq: 3, user_id: 'u1', name: 'Ada', role: 'learner', status: 'active' },
      { type: 'submission_started', seq: 4, assignment_id: 'a1', user_id: 'u1', name: 'Ada' },
      { type: 'submission', seq: 5, assignment_id: 'a1', user_id: 'u1', name: 'Ada', run_id: 'r1', verdict: 'accepted', passed: 1, total: 1, region: 'eu-west' },
      { type: 'chat', seq: 6, name: 'Ada', text: 'done' },
    ]
    const live = emptyState()
    for (const e of events) apply(live, { ...e })
    // The server's snapshot: feed lines only (no presence, no run start), as events with their seq.
    const recent = events.filter((e) => !['presence', 'submission_started'].includes(e.type))
    const resumed = apply(emptyState(), { type: 'snapshot', seq: 6, state: { roster: [], assignments: [], recent } })
    expect(resumed.feed).toEqual(live.feed)
    expect(resumed.feed.map((f) => f.type)).toEqual(['broadcast', 'assignment', 'submission', 'chat'])
  })
})
