// Quiz-taking logic that needs no page: question order, the answer each
// question type sends, and the countdown.

/** A question as the learner view gives it (answer keys removed). */
export interface QuizQuestion {
  type: 'single_choice' | 'multiple_choice' | 'short_answer' | 'code'
  id: string
  prompt: string
  choices?: string[]
  language?: string
  starter?: string
  tests?: { name: string; stdin?: string; expected_stdout?: string; compare?: string }[]
}

/**
 * The order to show questions in: as authored, or shuffled (Fisher-Yates
 * with `random`) when the quiz asks for it. Answers refer to question ids
 * and choice indexes, so only the question order moves.
 */
export function orderQuestions(questions: QuizQuestion[], shuffle: boolean, random: () => number): QuizQuestion[] {
  const out = [...questions]
  if (!shuffle) return out
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/**
 * What a question's answer sends, or undefined to leave it out (it then
 * counts as wrong): a choice index, a sorted list of indexes, a trimmed
 * text, or the id of the graded submission (hidden tests included) that
 * answered a code question.
 */
export function answerFor(q: QuizQuestion, value: unknown, submissionId?: string): unknown {
  switch (q.type) {
    case 'single_choice':
      return typeof value === 'number' ? value : undefined
    case 'multiple_choice':
      return Array.isArray(value) && value.length ? [...value].sort((a, b) => a - b) : undefined
    case 'short_answer':
      return typeof value === 'string' && value.trim() ? value.trim() : undefined
    case 'code':
      return submissionId ? { submission_id: submissionId } : undefined
  }
}

/** Whole seconds left of a time limit started at `startedAt`, never below zero; undefined without a limit. */
export function remainingSeconds(startedAt: number, limitSeconds: number | undefined, now: number): number | undefined {
  if (!limitSeconds) return undefined
  return Math.max(0, Math.ceil(limitSeconds - (now - startedAt) / 1000))
}
