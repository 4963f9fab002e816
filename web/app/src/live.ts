// The live-class client (docs/live-protocol.md): the class state folded from
// server frames, and a connection that joins with a ticket, remembers the
// last event's seq and resumes with it after any close that allows it, on
// the same edge or the next nearest one, so that nothing is lost or shown
// twice.

/** Someone in the class. */
export interface Person { user_id: string; name: string; role: string; status: string; hand: boolean }
/** A line of the class feed (chat, broadcast, assignment, submission...); `group` for a breakout room's chat or the instructor's message to it. */
export interface FeedItem { seq: number; type: string; name?: string; text?: string; title?: string; verdict?: string; passed?: number; total?: number; region?: string; group?: string; groups?: Group[] }
/** A learner's latest submission to one dropped assignment: a cell of the instructor's grid. */
export interface Cell { verdict: string; passed: number; total: number; attempts: number; run_id?: string; region?: string }
/** A breakout room: its name and its learners' user ids. */
export interface Group { name: string; members: string[] }
/** Who may speak in the class: the open mic, learners allowed to speak, learners the instructor muted (user ids). */
export interface ClassAudio { open_mic: boolean; allowed: string[]; muted: string[] }

/** What the page shows, folded from frames; `seq` is the last event applied. */
export interface LiveState {
  seq: number
  welcome?: { role: string; user_id?: string; region: string; node_id: string; epoch: number; resumed: boolean }
  roster: Record<string, Person>
  /**
   * The breakout split while the class is in rooms, else undefined. A
   * learner's snapshot holds only her own room; the `breakout_started`
   * event names every room.
   */
  breakout?: Group[]
  feed: FeedItem[]
  assignments: { assignment_id: string; title: string; language: string; instructions?: string; starter?: string }[]
  /**
   * The submission grid, assignment id → user id → cell, as the class
   * keeps it: an instructor's snapshot holds every learner's cells, a
   * learner's only her own; `submission_started` and `submission` events
   * update it.
   */
  grid: Record<string, Record<string, Cell>>
  /** Who may speak, from the snapshot's `audio` and the `allow_to_speak`, `mute` and `open_mic` events. */
  audio: ClassAudio
  ended: boolean
  error?: string
}

/** Most feed lines kept in the page. */
export const FEED_MAX = 200

export function emptyState(): LiveState {
  return { seq: 0, roster: {}, feed: [], assignments: [], grid: {}, audio: emptyAudio(), ended: false }
}

function emptyAudio(): ClassAudio {
  return { open_mic: false, allowed: [], muted: [] }
}

function audioOf(value: any): ClassAudio {
  const ids = (v: unknown) => (Array.isArray(v) ? [...new Set(v.map(String))] : [])
  return value && typeof value === 'object' ? { open_mic: Boolean(value.open_mic), allowed: ids(value.allowed), muted: ids(value.muted) } : emptyAudio()
}

/** `list` with `id` in it or not. */
function withMember(list: string[], id: string, member: boolean): string[] {
  const rest = list.filter((x) => x !== id)
  return member ? [...rest, id] : rest
}

/**
 * Whether the user may speak as far as the class says: instructors
 * always; a learner while allowed or while the mic is open, never while
 * the instructor has muted her.
 */
export function classPermission(state: LiveState): { role: string; allowed: boolean; openMic: boolean; serverMuted: boolean } {
  const id = state.welcome?.user_id ?? ''
  return { role: state.welcome?.role ?? 'learner', allowed: state.audio.allowed.includes(id), openMic: state.audio.open_mic, serverMuted: state.audio.muted.includes(id) }
}

const FEED_TYPES = new Set(['chat', 'broadcast', 'assignment', 'submission', 'breakout_started', 'breakout_message', 'breakout_ended', 'class_ended'])

function rosterOf(value: unknown): Record<string, Person> {
  const list = Array.isArray(value) ? value : value && typeof value === 'object' ? Object.entries(value as object).map(([id, p]) => ({ user_id: id, ...(p as object) })) : []
  return Object.fromEntries(list.map((p: any) => [p.user_id, { user_id: p.user_id, name: p.name ?? p.user_id, role: p.role ?? 'learner', status: p.status ?? p.presence ?? 'active', hand: Boolean(p.hand) }]))
}

/**
 * Applies one server frame. Events at or below the state's seq were seen
 * already and are ignored (a resume never shows one twice); replies only
 * update where the session stands.
 */
export function apply(state: LiveState, frame: any): LiveState {
  switch (frame.type) {
    case 'welcome':
      state.welcome = { role: frame.role, user_id: frame.user_id, region: frame.region, node_id: frame.node_id, epoch: frame.epoch, resumed: frame.resumed }
      state.error = undefined
      return state
    case 'error':
      state.error = `${frame.code}: ${frame.message}`
      return state
    case 'pong':
    case 'media': // the audio connection's signals (media.ts), not class events
      return state
    case 'snapshot': {
      const s = frame.state ?? {}
      state.roster = rosterOf(s.roster)
      state.assignments = Array.isArray(s.assignments) ? s.assignments : Object.values(s.assignments ?? {})
      state.breakout = groupsOf(s.breakout)
      state.grid = gridOf(s.grid)
      state.audio = audioOf(s.audio)
      state.feed = []
      state.seq = frame.seq
      for (const r of Array.isArray(s.recent) ? s.recent : []) {
        const ev = r.type ? r : { ...(r.kind ?? {}), seq: r.seq }
        if (FEED_TYPES.has(ev.type)) state.feed.push({ ...ev })
      }
      state.ended = Boolean(s.ended)
      return state
    }
  }
  if (typeof frame.seq !== 'number' || frame.seq <= state.seq) return state
  state.seq = frame.seq
  switch (frame.type) {
    case 'presence': {
      const p = state.roster[frame.user_id] ?? { user_id: frame.user_id, name: frame.name, role: frame.role, status: frame.status, hand: false }
      state.roster[frame.user_id] = { ...p, name: frame.name, role: frame.role, status: frame.status }
      break
    }
    case 'hand':
      if (state.roster[frame.user_id]) state.roster[frame.user_id].hand = frame.raised
      break
    case 'assignment':
      state.assignments.push({ assignment_id: frame.assignment_id, title: frame.title, language: frame.language, instructions: frame.instructions, starter: frame.starter })
      break
    case 'submission_started': {
      const row = (state.grid[frame.assignment_id] ??= {})
      const cell = row[frame.user_id]
      row[frame.user_id] = { verdict: 'running', passed: 0, total: cell?.total ?? 0, attempts: (cell?.attempts ?? 0) + 1 }
      break
    }
    case 'submission': {
      const row = (state.grid[frame.assignment_id] ??= {})
      const attempts = row[frame.user_id]?.attempts ?? 1
      row[frame.user_id] = { verdict: String(frame.verdict), passed: Number(frame.passed) || 0, total: Number(frame.total) || 0, attempts, run_id: frame.run_id, region: frame.region }
      break
    }
    case 'breakout_started':
      state.breakout = groupsOf(frame.groups)
      break
    case 'allow_to_speak':
      state.audio.allowed = withMember(state.audio.allowed, String(frame.user_id), Boolean(frame.allowed))
      break
    case 'mute':
      state.audio.muted = withMember(state.audio.muted, String(frame.user_id), Boolean(frame.muted))
      break
    case 'open_mic':
      state.audio.open_mic = Boolean(frame.open)
      break
    case 'breakout_ended':
      state.breakout = undefined
      break
    case 'class_ended':
      state.ended = true
      state.breakout = undefined
      break
  }
  if (FEED_TYPES.has(frame.type)) {
    state.feed.push({ ...frame })
    if (state.feed.length > FEED_MAX) state.feed.splice(0, state.feed.length - FEED_MAX)
  }
  return state
}

function gridOf(value: unknown): Record<string, Record<string, Cell>> {
  const grid: Record<string, Record<string, Cell>> = {}
  if (!value || typeof value !== 'object') return grid
  for (const [assignment, row] of Object.entries(value as Record<string, unknown>)) {
    if (!row || typeof row !== 'object') continue
    grid[assignment] = {}
    for (const [user, c] of Object.entries(row as Record<string, any>)) {
      grid[assignment][user] = { verdict: String(c?.verdict ?? 'running'), passed: Number(c?.passed) || 0, total: Number(c?.total) || 0, attempts: Number(c?.attempts) || 0, run_id: c?.run_id ?? undefined }
    }
  }
  return grid
}

/** One learner's row of the grid: her cell per dropped assignment, in drop order (undefined where she has not submitted). */
export interface GridRow { user_id: string; name: string; cells: (Cell | undefined)[] }

/**
 * The instructor's grid as rows: every learner in the roster, then anyone
 * with a cell who is no longer in it, by name; one column per dropped
 * assignment in the order they were dropped.
 */
export function gridRows(state: LiveState): GridRow[] {
  const ids = new Set(Object.values(state.roster).filter((p) => p.role === 'learner').map((p) => p.user_id))
  for (const row of Object.values(state.grid)) for (const id of Object.keys(row)) ids.add(id)
  return [...ids]
    .map((id) => ({ user_id: id, name: state.roster[id]?.name ?? id, cells: state.assignments.map((a) => state.grid[a.assignment_id]?.[id]) }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.user_id.localeCompare(b.user_id))
}

function groupsOf(value: unknown): Group[] | undefined {
  if (!Array.isArray(value)) return undefined
  return value.map((g: any) => ({ name: String(g.name), members: Array.isArray(g.members) ? g.members.map(String) : [] }))
}

/** The room `userId` is in while the class is split, else undefined. */
export function roomOf(state: LiveState, userId: string | undefined): Group | undefined {
  if (!userId) return undefined
  return state.breakout?.find((g) => g.members.includes(userId))
}

/**
 * Whether a feed line belongs in the main room's feed or a room's: chat
 * and instructor messages said in a room carry its name.
 */
export function feedFor(state: LiveState, group: string | undefined): FeedItem[] {
  return state.feed.filter((f) => (f.group ?? undefined) === group)
}

/**
 * Splits `learners` (user ids, in the order given) into `rooms` rooms
 * round-robin, named by `name(1..rooms)`; never more rooms than learners,
 * at least one, at most GROUPS_MAX.
 */
export function splitInto(learners: string[], rooms: number, name: (n: number) => string): Group[] {
  const n = Math.max(1, Math.min(Math.floor(rooms) || 1, learners.length || 1, GROUPS_MAX))
  const groups: Group[] = Array.from({ length: n }, (_, i) => ({ name: name(i + 1), members: [] }))
  learners.forEach((id, i) => groups[i % n].members.push(id))
  return groups
}

/** Moves `userId` into the room named `to` (out of any other); an unknown room leaves her in none. */
export function assignTo(groups: Group[], userId: string, to: string): Group[] {
  return groups.map((g) => ({
    name: g.name,
    members: g.name === to ? [...g.members.filter((m) => m !== userId), userId] : g.members.filter((m) => m !== userId),
  }))
}

/** The `breakout_start` frame for a split; empty rooms are left out (the server wants members to be learners, not a count). */
export function breakoutStartFrame(groups: Group[]): Record<string, unknown> {
  return { type: 'breakout_start', groups: groups.filter((g) => g.members.length > 0).map((g) => ({ name: g.name, members: g.members })) }
}

/** Most breakout rooms at once (the protocol's GROUPS_MAX). */
export const GROUPS_MAX = 64

/** Close codes after which joining again cannot help. */
const FINAL_CLOSES = new Set([4010])

/** Whether a close with `code` should be followed by a resume, and where: the same edge, or the next one. */
export function afterClose(code: number): 'stop' | 'same' | 'next' {
  if (FINAL_CLOSES.has(code)) return 'stop'
  if (code === 4013 || code === 4014 || code === 1001 || code === 1006) return 'next'
  return 'same'
}

/** The join frame: a fresh join, or a resume from the last event seen. */
export function joinFrame(ticket: string, lastSeq: number): Record<string, unknown> {
  return lastSeq > 0 ? { type: 'join', ticket, last_seq: lastSeq } : { type: 'join', ticket }
}
