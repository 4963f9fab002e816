import { describe, expect, it } from 'vitest'
import {
  UNIT_KINDS, cleanBody, defaultBody, fromLocalInput, newQuestion, newTest, nextName, passedAll, problems,
  referenceRun, retypeQuestion, toLocalInput,
} from '../src/builder'

const now = new Date('2026-12-03T10:20:30Z')
const words = { prompt: 'New question', choices: ['One', 'Two'] as [string, string] }

describe('new units and questions', () => {
  it('starts every kind with a body', () => {
    for (const kind of UNIT_KINDS) expect(defaultBody(kind, 'python', 'main.py', 'eu-west', now, words), kind).toBeTruthy()
    const live = defaultBody('live_classroom', 'python', 'main.py', 'eu-west', now, words)
    expect(live.schedule.starts_at).toBe('2026-12-04T10:00:00Z')
    expect(live.region).toBe('eu-west')
    expect(problems('live_classroom', live)).toEqual([])
    const a = defaultBody('assignment', 'java', 'Main.java', 'eu-west', now, words)
    expect(a.starter_files[0].name).toBe('Main.java')
    expect(a.reference_solution[0].name).toBe('Main.java')
    const quiz = defaultBody('quiz', 'python', 'main.py', 'eu-west', now, words)
    expect(problems('quiz', quiz)).toEqual([])
  })

  it('gives new questions and tests ids not yet used', () => {
    expect(nextName('q', ['q1', 'q3'])).toBe('q2')
    expect(newQuestion('code', ['q1', 'q2'], 'go')).toMatchObject({ id: 'q3', type: 'code', language: 'go' })
    expect(newTest([{ name: 'test1', stdin: '', expected_stdout: '' }]).name).toBe('test2')
    expect(newTest([], 'hidden').name).toBe('hidden1')
    const retyped = retypeQuestion({ type: 'single_choice', id: 'q7', prompt: 'Why?', choices: ['a', 'b'], answer: 1 }, 'short_answer', 'python')
    expect(retyped).toEqual({ type: 'short_answer', id: 'q7', prompt: 'Why?', accepted: [''], case_sensitive: false })
  })
})

describe('checks before saving', () => {
  it('points at what a quiz lacks', () => {
    const quiz = { questions: [newQuestion('single_choice', [], 'python'), newQuestion('short_answer', ['q1'], 'python'), newQuestion('code', ['q1', 'q2'], 'python')] }
    const keys = problems('quiz', quiz).map((p) => `${p.key}:${p.params?.n ?? ''}`)
    expect(keys).toEqual([
      'builder.problem.noPrompt:1', 'builder.problem.choices:1',
      'builder.problem.noPrompt:2', 'builder.problem.accepted:2',
      'builder.problem.noPrompt:3', 'builder.problem.codeTests:3',
    ])
    quiz.questions[0] = { ...quiz.questions[0], prompt: 'p', choices: ['x', 'y'], answer: 2 }
    expect(problems('quiz', quiz).map((p) => p.key)).toContain('builder.problem.answer')
    expect(problems('quiz', { questions: [] }).map((p) => p.key)).toEqual(['builder.problem.noQuestions'])
  })

  it('points at what an assignment and a live class lack', () => {
    expect(problems('assignment', { starter_files: [], visible_tests: [], hidden_tests: [] }).map((p) => p.key))
      .toEqual(['builder.problem.files', 'builder.problem.tests'])
    expect(problems('live_classroom', { schedule: { starts_at: 'tomorrow', duration_minutes: 0 }, cohort: ' ', region: 'EU West' }).map((p) => p.key))
      .toEqual(['builder.problem.start', 'builder.problem.duration', 'builder.problem.cohort', 'builder.problem.region'])
  })
})

describe('the body as sent', () => {
  it('leaves empty optional fields out and types numbers', () => {
    expect(cleanBody('quiz', { questions: [], settings: { shuffle: true, attempts_max: '', time_limit_s: '90' } }).settings)
      .toEqual({ shuffle: true, time_limit_s: 90 })
    const a = cleanBody('assignment', { limits: { wall_ms: '2000', memory_mb: '' }, reference_solution: [{ name: 'main.py', content: ' ' }] })
    expect(a).toEqual({ limits: { wall_ms: 2000 } })
    expect(cleanBody('live_classroom', { schedule: { starts_at: 'x', duration_minutes: '45' } }).schedule.duration_minutes).toBe(45)
  })

  it('runs the reference solution against every test, visible and hidden', () => {
    const body = {
      language: 'python', limits: { wall_ms: '' },
      visible_tests: [{ name: 'v', stdin: '1', expected_stdout: '2' }],
      hidden_tests: [{ name: 'h', stdin: '2', expected_stdout: '4' }],
      reference_solution: [{ name: 'main.py', content: 'print(int(input())*2)' }],
    }
    expect(referenceRun(body)).toEqual({ language: 'python', files: body.reference_solution, tests: [...body.visible_tests, ...body.hidden_tests], limits: {} })
    expect(referenceRun({ ...body, reference_solution: [{ name: 'main.py', content: '' }] })).toBeUndefined()
    expect(passedAll({ status: 'accepted', tests: [{ status: 'accepted' }] })).toBe(true)
    expect(passedAll({ status: 'accepted', tests: [] })).toBe(false)
    expect(passedAll({ status: 'wrong_answer', tests: [{ status: 'accepted' }, { status: 'wrong_answer' }] })).toBe(false)
  })

  it('converts the schedule between RFC 3339 and the local input', () => {
    const local = toLocalInput('2026-12-04T10:00:00Z')
    expect(local).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d$/)
    expect(fromLocalInput(local)).toBe('2026-12-04T10:00:00Z')
    expect(fromLocalInput('')).toBe('')
    expect(toLocalInput('not a date')).toBe('')
  })
})

describe('stored bodies in the forms', () => {
  it('fills in what the control plane leaves out, and cleans back to the same', async () => {
    const { editable } = await import('../src/builder')
    const stored = { language: 'python', starter_files: [{ name: 'main.py', content: 'x' }], visible_tests: [{ name: 't', stdin: '', expected_stdout: '1' }], limits: {} }
    const form = editable('assignment', stored)
    expect(form.hidden_tests).toEqual([])
    expect(form.reference_solution).toEqual([{ name: 'main.py', content: '' }])
    expect(cleanBody('assignment', form)).toEqual({ ...stored, hidden_tests: [] })
    const quiz = editable('quiz', { questions: [{ type: 'code', id: 'q1', prompt: 'p', language: 'python', tests: [{ name: 't', stdin: '', expected_stdout: '' }] }] })
    expect(quiz.questions[0].hidden_tests).toEqual([])
    expect(cleanBody('quiz', quiz).settings).toEqual({ shuffle: false })
  })
})
