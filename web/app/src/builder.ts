// The instructor builders' logic that needs no page: a new unit's starting
// body per kind, new quiz questions with fresh ids, the checks the builder
// makes before it saves (the control plane checks again and has the last
// word), the body as it is sent (empty optional fields left out), the
// reference-solution run of an assignment, and date-time conversion for the
// live class's schedule.

export type UnitKind = 'lesson' | 'quiz' | 'assignment' | 'live_classroom'
export const UNIT_KINDS: UnitKind[] = ['lesson', 'quiz', 'assignment', 'live_classroom']

export type QuestionType = 'single_choice' | 'multiple_choice' | 'short_answer' | 'code'
export const QUESTION_TYPES: QuestionType[] = ['single_choice', 'multiple_choice', 'short_answer', 'code']

export const COMPARES = ['trimmed', 'exact', 'tokens', 'float'] as const

export interface TestCase { name: string; stdin: string; expected_stdout: string; compare?: string }
export interface SourceFile { name: string; content: string }

/** A blank test case, named `prefix` + the first free number (hidden tests use their own prefix, so names stay apart). */
export function newTest(existing: TestCase[], prefix = 'test'): TestCase {
  return { name: nextName(prefix, existing.map((t) => t.name)), stdin: '', expected_stdout: '', compare: 'trimmed' }
}

/** `prefix` + the smallest number not yet used among `taken`. */
export function nextName(prefix: string, taken: string[]): string {
  const used = new Set(taken)
  for (let n = 1; ; n++) if (!used.has(`${prefix}${n}`)) return `${prefix}${n}`
}

/** Words a new quiz's first question starts with (in the author's language). */
export interface StarterWords { prompt: string; choices: [string, string] }

/**
 * The body a new unit starts with: valid for its kind as the control plane
 * checks it (drafts too), so a unit can be created first and filled in
 * afterwards. A quiz starts with one single-choice question in `words`.
 */
export function defaultBody(kind: UnitKind, language: string, fileName: string, region: string, now: Date, words: StarterWords): any {
  switch (kind) {
    case 'lesson':
      return { markdown: '', snippets: [] }
    case 'quiz':
      return { questions: [{ ...newQuestion('single_choice', [], language), prompt: words.prompt, choices: [...words.choices] }], settings: { shuffle: false } }
    case 'assignment':
      return {
        language,
        starter_files: [{ name: fileName, content: '' }],
        visible_tests: [{ name: 'test1', stdin: '', expected_stdout: '', compare: 'trimmed' }],
        hidden_tests: [],
        limits: {},
        reference_solution: [{ name: fileName, content: '' }],
      }
    case 'live_classroom': {
      const start = new Date(now.getTime() + 24 * 3600 * 1000)
      start.setUTCMinutes(0, 0, 0)
      return { schedule: { starts_at: start.toISOString().replace('.000Z', 'Z'), duration_minutes: 60 }, cohort: 'everyone', region }
    }
  }
}

/** A new question of `type` with an id not used by `existingIds`. */
export function newQuestion(type: QuestionType, existingIds: string[], language: string): any {
  const id = nextName('q', existingIds)
  switch (type) {
    case 'single_choice':
      return { type, id, prompt: '', choices: ['', ''], answer: 0 }
    case 'multiple_choice':
      return { type, id, prompt: '', choices: ['', ''], answers: [0] }
    case 'short_answer':
      return { type, id, prompt: '', accepted: [''], case_sensitive: false }
    case 'code':
      return { type, id, prompt: '', language, starter: '', tests: [], hidden_tests: [] }
  }
}

/** Changes a question's type, keeping its id and prompt. */
export function retypeQuestion(q: any, type: QuestionType, language: string): any {
  return { ...newQuestion(type, [], language), id: q.id, prompt: q.prompt }
}

/**
 * What the builder finds wrong before saving, as i18n keys with their
 * parameters; empty when it has nothing to say. The control plane refuses
 * the same mistakes (422) and more: these are the ones a form can point at.
 */
export function problems(kind: UnitKind, body: any): { key: string; params?: Record<string, unknown> }[] {
  const out: { key: string; params?: Record<string, unknown> }[] = []
  const testsOk = (tests: TestCase[]) => tests.every((t) => t.name.trim())
  if (kind === 'quiz') {
    if (!body.questions?.length) out.push({ key: 'builder.problem.noQuestions' })
    for (const [i, q] of (body.questions ?? []).entries()) {
      const n = i + 1
      if (!String(q.prompt ?? '').trim()) out.push({ key: 'builder.problem.noPrompt', params: { n } })
      if (q.type === 'single_choice' || q.type === 'multiple_choice') {
        if (q.choices.length < 2 || q.choices.some((c: string) => !c.trim())) out.push({ key: 'builder.problem.choices', params: { n } })
        const keys: number[] = q.type === 'single_choice' ? [q.answer] : q.answers
        if (!keys.length || keys.some((k) => typeof k !== 'number' || k < 0 || k >= q.choices.length)) out.push({ key: 'builder.problem.answer', params: { n } })
      }
      if (q.type === 'short_answer' && !q.accepted.some((a: string) => a.trim())) out.push({ key: 'builder.problem.accepted', params: { n } })
      if (q.type === 'code' && (q.tests.length + q.hidden_tests.length === 0 || !testsOk([...q.tests, ...q.hidden_tests]))) out.push({ key: 'builder.problem.codeTests', params: { n } })
    }
  }
  if (kind === 'assignment') {
    if (!body.starter_files?.length || body.starter_files.some((f: SourceFile) => !f.name.trim())) out.push({ key: 'builder.problem.files' })
    const all = [...(body.visible_tests ?? []), ...(body.hidden_tests ?? [])]
    if (!all.length || !testsOk(all)) out.push({ key: 'builder.problem.tests' })
  }
  if (kind === 'live_classroom') {
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(body.schedule?.starts_at ?? '')) out.push({ key: 'builder.problem.start' })
    if (!(body.schedule?.duration_minutes >= 1)) out.push({ key: 'builder.problem.duration' })
    if (!String(body.cohort ?? '').trim()) out.push({ key: 'builder.problem.cohort' })
    if (!/^[a-z0-9-]+$/.test(body.region ?? '')) out.push({ key: 'builder.problem.region' })
  }
  return out
}

const blank = (v: unknown) => v === '' || v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))

/**
 * The body as the control plane takes it: number fields typed as numbers,
 * empty optional fields (attempts, time limit, run limits, reference
 * solution) left out rather than sent empty.
 */
export function cleanBody(kind: UnitKind, body: any): any {
  const copy = JSON.parse(JSON.stringify(body))
  if (kind === 'quiz') {
    const s = copy.settings ?? {}
    for (const k of ['attempts_max', 'time_limit_s']) {
      if (blank(s[k])) delete s[k]
      else s[k] = Number(s[k])
    }
    copy.settings = s
  }
  if (kind === 'assignment') {
    const l = copy.limits ?? {}
    for (const k of ['wall_ms', 'memory_mb']) {
      if (blank(l[k])) delete l[k]
      else l[k] = Number(l[k])
    }
    copy.limits = l
    if (!(copy.reference_solution ?? []).some((f: SourceFile) => f.content.trim())) delete copy.reference_solution
  }
  if (kind === 'live_classroom') copy.schedule.duration_minutes = Number(copy.schedule.duration_minutes)
  return copy
}

/** The run that checks an assignment's reference solution: every test, visible and hidden. */
export function referenceRun(body: any): { language: string; files: SourceFile[]; tests: TestCase[]; limits: any } | undefined {
  const files: SourceFile[] = body.reference_solution ?? []
  if (!files.some((f) => f.content.trim())) return undefined
  const limits = cleanBody('assignment', { ...body, reference_solution: [] }).limits
  return { language: body.language, files, tests: [...(body.visible_tests ?? []), ...(body.hidden_tests ?? [])], limits }
}

/** Whether a run passed every one of its tests (and had some). */
export function passedAll(result: any): boolean {
  const tests = result?.tests ?? []
  return result?.status === 'accepted' && tests.length > 0 && tests.every((t: any) => t.status === 'accepted')
}

/** An RFC 3339 instant as a `datetime-local` input value in the browser's zone. */
export function toLocalInput(rfc3339: string): string {
  const d = new Date(rfc3339)
  if (Number.isNaN(d.getTime())) return ''
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`
}

/** A `datetime-local` value (browser's zone) as RFC 3339 in UTC, or '' when incomplete. */
export function fromLocalInput(local: string): string {
  const d = new Date(local)
  if (!local || Number.isNaN(d.getTime())) return ''
  return d.toISOString().replace('.000Z', 'Z')
}

/**
 * A stored body with every list and group the forms edit present (the
 * control plane leaves empty optional ones out): quiz settings, code
 * questions' tests, an assignment's hidden tests, limits and a reference
 * solution file named like the first starter file.
 */
export function editable(kind: UnitKind, stored: any): any {
  const body = JSON.parse(JSON.stringify(stored ?? {}))
  if (kind === 'lesson') body.snippets ??= []
  if (kind === 'quiz') {
    body.questions ??= []
    body.settings = { shuffle: false, attempts_max: '', time_limit_s: '', ...(body.settings ?? {}) }
    for (const q of body.questions) {
      if (q.type === 'code') { q.tests ??= []; q.hidden_tests ??= []; q.starter ??= '' }
      if (q.type === 'multiple_choice') q.answers ??= []
      if (q.type === 'short_answer') { q.accepted ??= ['']; q.case_sensitive ??= false }
    }
  }
  if (kind === 'assignment') {
    body.starter_files ??= []
    body.visible_tests ??= []
    body.hidden_tests ??= []
    body.limits = { wall_ms: '', memory_mb: '', ...(body.limits ?? {}) }
    if (!body.reference_solution?.length) body.reference_solution = [{ name: body.starter_files[0]?.name ?? 'main', content: '' }]
  }
  return body
}
