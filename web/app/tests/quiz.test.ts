import { describe, expect, it } from 'vitest'
import { answerFor, orderQuestions, remainingSeconds, type QuizQuestion } from '../src/quiz'

const qs: QuizQuestion[] = ['a', 'b', 'c', 'd'].map((id) => ({ type: 'single_choice', id, prompt: id, choices: ['x', 'y'] }))

describe('quiz', () => {
  it('keeps the authored order unless asked to shuffle, and shuffling keeps every question once', () => {
    expect(orderQuestions(qs, false, () => 0).map((q) => q.id)).toEqual(['a', 'b', 'c', 'd'])
    const shuffled = orderQuestions(qs, true, () => 0).map((q) => q.id)
    expect(shuffled).not.toEqual(['a', 'b', 'c', 'd'])
    expect([...shuffled].sort()).toEqual(['a', 'b', 'c', 'd'])
    expect(qs.map((q) => q.id)).toEqual(['a', 'b', 'c', 'd'])
  })

  it('sends each question type in the shape the control plane grades', () => {
    expect(answerFor({ type: 'single_choice', id: 'q', prompt: '' }, 1)).toBe(1)
    expect(answerFor({ type: 'single_choice', id: 'q', prompt: '' }, null)).toBeUndefined()
    expect(answerFor({ type: 'multiple_choice', id: 'q', prompt: '' }, [2, 0])).toEqual([0, 2])
    expect(answerFor({ type: 'multiple_choice', id: 'q', prompt: '' }, [])).toBeUndefined()
    expect(answerFor({ type: 'short_answer', id: 'q', prompt: '' }, '  input ')).toBe('input')
    expect(answerFor({ type: 'short_answer', id: 'q', prompt: '' }, '   ')).toBeUndefined()
    expect(answerFor({ type: 'code', id: 'q', prompt: '' }, 'print(1)', 'run-1')).toEqual({ submission_id: 'run-1' })
    expect(answerFor({ type: 'code', id: 'q', prompt: '' }, 'print(1)')).toBeUndefined()
  })

  it('counts the time limit down to zero and not below', () => {
    expect(remainingSeconds(0, 600, 0)).toBe(600)
    expect(remainingSeconds(0, 600, 1_500)).toBe(599)
    expect(remainingSeconds(0, 600, 600_000)).toBe(0)
    expect(remainingSeconds(0, 600, 900_000)).toBe(0)
    expect(remainingSeconds(0, undefined, 5)).toBeUndefined()
  })
})
