import { describe, expect, it } from 'vitest'
import { completionPercents, stuckAt, type UnitStats } from '../src/dashboard'

const u = (id: string, started: number, completed: number): UnitStats => ({
  unit_id: id, kind: 'quiz', title: id, learners_started: started, learners_completed: completed,
  attempts: 0, average_best_score: null, submissions: 0, accepted: 0,
})

describe('class dashboard', () => {
  it('gives the share of enrolled learners who finished each unit', () => {
    expect(completionPercents([u('a', 3, 3), u('b', 3, 1), u('c', 0, 0)], 3)).toEqual([100, 33, 0])
    expect(completionPercents([u('a', 1, 1)], 0)).toEqual([0])
  })
  it('names the unit that loses the most learners, or none', () => {
    expect(stuckAt([u('a', 3, 3), u('b', 3, 1), u('c', 1, 0)])?.unit_id).toBe('b')
    expect(stuckAt([u('a', 2, 2)])).toBeUndefined()
  })
})
