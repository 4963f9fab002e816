// The learning path's unit states: done (completed in progress), open (on
// the frontier) or locked (anything else).
export type UnitState = 'done' | 'open' | 'locked'

export function unitState(unitId: string, frontier: Set<string>, completed: Set<string>): UnitState {
  if (completed.has(unitId)) return 'done'
  if (frontier.has(unitId)) return 'open'
  return 'locked'
}

export function unitLink(kind: string, id: string): string | undefined {
  if (kind === 'lesson') return `/lessons/${id}`
  if (kind === 'assignment') return `/assignments/${id}`
  if (kind === 'quiz') return `/quizzes/${id}`
  if (kind === 'live_classroom') return `/live/${id}`
  return undefined
}
