// The timetable page's logic, kept out of the page so it is tested: which
// media type a chosen file is sent as, the import's query string, what a
// refused import means (422 problems, 413, 415), the place of a problem,
// words for codes with the code itself as the fallback, and times in an
// event's own zone. The JSON shapes are the control plane's
// (`control-plane/src/timetables/model.rs`).

/** Where in a file something is: a CSV line (and column), or an iCalendar component (and property). */
export interface Place {
  line?: number
  component?: string
  property?: string
}

/** One problem of a file: a stable code, its place, and a message (English, lowercase). */
export interface Problem extends Place {
  code: string
  message: string
}

/** Why less was imported than the file says, without an error. */
export interface Note extends Place {
  code: string
  message: string
}

export type Change = 'created' | 'updated' | 'unchanged'

export interface TimetableEvent extends Place {
  uid: string
  title: string
  time_zone: string
  region: string
  languages: string[]
  learners: number
  course_id?: string | null
  cohort_id?: string | null
  duration_minutes: number
  occurrences: number
  change: Change
}

/** The answer of `POST /api/v1/timetables`. */
export interface ImportReport {
  timetable_id: string | null
  name: string
  format: 'icalendar' | 'csv'
  dry_run: boolean
  events: TimetableEvent[]
  removed: string[]
  occurrences: number
  capped: boolean
  problems: Problem[]
  problems_unlisted: number
  notes: Note[]
  expanded_from: string
  expanded_to: string
}

/** A timetable of `GET /api/v1/timetables`. */
export interface Timetable {
  id: string
  name: string
  format: 'icalendar' | 'csv'
  events: number
  occurrences: number
  imported_by: string
  created_at: number
  updated_at: number
}

/** One occurrence of `GET /api/v1/timetables/{id}/occurrences`. */
export interface Occurrence {
  uid: string
  title: string
  starts_at: string
  ends_at: string
  time_zone: string
  local_starts_at: string
  region: string
  languages: string[]
  learners: number
}

export interface Occurrences {
  timetable_id: string
  from: string
  to: string
  occurrences: Occurrence[]
}

/** The two media types the control plane takes. */
export type MediaType = 'text/calendar' | 'text/csv'

/** The media type a file is sent as, by its extension (any case); undefined for anything else. */
export function mediaTypeFor(fileName: string): MediaType | undefined {
  const ext = fileName.toLowerCase().match(/\.([a-z0-9]+)$/)?.[1]
  if (ext === 'ics') return 'text/calendar'
  if (ext === 'csv') return 'text/csv'
  return undefined
}

export interface ImportOptions {
  /** Check only: nothing is written. */
  dryRun: boolean
  /** Import the valid events of a file with problems. */
  partial: boolean
  /** The timetable's name; blank means the calendar's own. */
  name: string
}

/** The path of `POST /api/v1/timetables` with its query. */
export function importPath(o: ImportOptions): string {
  const q = new URLSearchParams()
  if (o.dryRun) q.set('dry_run', 'true')
  else if (o.partial) q.set('partial', 'true')
  const name = o.name.trim()
  if (name) q.set('name', name)
  const s = q.toString()
  return s ? `/api/v1/timetables?${s}` : '/api/v1/timetables'
}

/** What a refused import means for the page. */
export type FailureKind = 'invalid' | 'too_large' | 'unsupported' | 'conflict' | 'other'

export interface ImportFailure {
  kind: FailureKind
  /** The file's problems (422 `timetable_invalid`), empty otherwise. */
  problems: Problem[]
  /** The server's message, shown beside the words. */
  message: string
}

/**
 * Reads a refused import from the API error (`status`, `code`, `message`
 * and the `error.problems` of a 422); a problem without a code or a message
 * is left out rather than shown half.
 */
export function importFailure(e: { status?: number; code?: string; message?: string; problems?: unknown }): ImportFailure {
  const message = e.message ?? ''
  const problems = Array.isArray(e.problems)
    ? (e.problems as any[]).filter((p) => p && typeof p.code === 'string' && typeof p.message === 'string') as Problem[]
    : []
  if (e.status === 422 || e.code === 'timetable_invalid') return { kind: 'invalid', problems, message }
  if (e.status === 413 || e.code === 'payload_too_large') return { kind: 'too_large', problems: [], message }
  if (e.status === 415 || e.code === 'unsupported_media_type') return { kind: 'unsupported', problems: [], message }
  if (e.status === 409 || e.code === 'conflict') return { kind: 'conflict', problems: [], message }
  return { kind: 'other', problems: [], message }
}

/** The parts of a place, in reading order, for the page to put words to. */
export function placeParts(p: Place): { kind: 'line' | 'component' | 'property'; value: string }[] {
  const out: { kind: 'line' | 'component' | 'property'; value: string }[] = []
  if (p.line !== undefined && p.line !== null) out.push({ kind: 'line', value: String(p.line) })
  if (p.component) out.push({ kind: 'component', value: p.component })
  if (p.property) out.push({ kind: 'property', value: p.property })
  return out
}

/**
 * Words for a code under `prefix` (`instructor.timetables.problem`) when the
 * locale has them, else the code itself: a code added on the server after
 * this page still reads as something.
 */
export function codeLabel(prefix: string, code: string, has: (key: string) => boolean, translate: (key: string) => string): string {
  const key = `${prefix}.${code}`
  return /^[a-z0-9_]+$/.test(code) && has(key) ? translate(key) : code
}

/**
 * A time in a time zone, in the page's locale (date and time, short). The
 * control plane knows its zones from chrono-tz; a zone this browser does not
 * know leaves the time as the server wrote it.
 */
export function zonedTime(iso: string, timeZone: string, locale: string): string {
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) return iso
  try {
    return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(new Date(ms))
  } catch {
    return iso
  }
}

/** Most occurrences the page lists for one timetable; the rest are counted. */
export const OCCURRENCES_SHOWN_MAX = 200
/** Timetables asked for per page. */
export const TIMETABLES_PAGE = 50
