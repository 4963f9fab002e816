// The class dashboard's arithmetic, kept out of the page so it is tested:
// the share of enrolled learners who finished each unit, and which unit
// loses the most learners (where the class gets stuck).

/** A row of `GET /api/v1/courses/{id}/unit-stats`. */
export interface UnitStats {
  unit_id: string
  kind: string
  title: string
  learners_started: number
  learners_completed: number
  attempts: number
  average_best_score: number | null
  submissions: number
  accepted: number
}

/** Percent (0..100, whole) of `enrolled` learners who completed each unit; 0 with nobody enrolled. */
export function completionPercents(items: UnitStats[], enrolled: number): number[] {
  return items.map((u) => (enrolled > 0 ? Math.round((100 * Math.min(u.learners_completed, enrolled)) / enrolled) : 0))
}

/**
 * The unit where most learners who started it have not finished it: the
 * one to look at first. Undefined when every learner who started a unit
 * finished it.
 */
export function stuckAt(items: UnitStats[]): UnitStats | undefined {
  let worst: UnitStats | undefined
  let gap = 0
  for (const u of items) {
    const open = u.learners_started - u.learners_completed
    if (open > gap) { gap = open; worst = u }
  }
  return worst
}
