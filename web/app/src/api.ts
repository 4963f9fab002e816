// The API boundary: the control plane (identity, content, progress) and the
// chosen edge (runs). The control plane's URL is the page's origin unless the
// page is served by an edge, which names its control plane in /api/v1/node.

import { reactive } from 'vue'
import { RegionChooser, type Candidate } from './region'
import { SseParser, outputText } from './sse'

export const session = reactive({
  token: localStorage.getItem('lyceum.token') ?? '',
  controlPlane: localStorage.getItem('lyceum.cp') ?? location.origin,
  edge: undefined as Candidate | undefined,
})

export const chooser = new RegionChooser((url, init) => fetch(url, init))
chooser.pinned = localStorage.getItem('lyceum.region') ?? undefined

/**
 * The regions last measured, by name, and the pinned one (for the region
 * picker, which must show a pinned region even while it is unreachable).
 */
export const regionsSeen = reactive({ list: [] as string[], pinned: chooser.pinned as string | undefined })

/**
 * Chooses a region over the nearest one (undefined: back to the nearest),
 * kept across visits, and reconnects.
 */
export async function pinRegion(region: string | undefined): Promise<Candidate | undefined> {
  chooser.pinned = region
  regionsSeen.pinned = region
  if (region) localStorage.setItem('lyceum.region', region)
  else localStorage.removeItem('lyceum.region')
  return connectRegion()
}

/** A refused call: HTTP status, stable code, message, and a refused timetable's `error.problems` (empty otherwise). */
export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string, public problems: unknown[] = []) { super(message) }
}

export function setToken(token: string) {
  session.token = token
  if (token) localStorage.setItem('lyceum.token', token)
  else localStorage.removeItem('lyceum.token')
}

async function call(base: string, path: string, init: RequestInit = {}): Promise<any> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (session.token) headers.authorization = `Bearer ${session.token}`
  const res = await fetch(`${base}${path}`, { ...init, headers: { ...headers, ...(init.headers as any) } })
  const text = await res.text()
  if (!res.ok) {
    // A refusal may come from something in front of the server (a proxy's
    // 413 page): its status still says what happened.
    let body: any = {}
    try { body = text ? JSON.parse(text) : {} } catch { /* not JSON */ }
    const problems = Array.isArray(body?.error?.problems) ? body.error.problems : []
    throw new ApiError(res.status, body?.error?.code ?? 'error', body?.error?.message ?? res.statusText, problems)
  }
  return text ? JSON.parse(text) : {}
}

/** The signed-in user's role (learner, instructor, operator) from the access token's claims, for navigation only: the servers check it again. */
export function sessionRole(): string | undefined {
  return tokenClaims(session.token)?.role
}

/** Decodes a JWT's payload without verifying it (the servers verify). */
export function tokenClaims(token: string): Record<string, any> | undefined {
  const part = token.split('.')[1]
  if (!part) return undefined
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=')
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))))
  } catch {
    return undefined
  }
}

/**
 * When the page is served by an edge (the usual case: learners open their
 * nearest edge), the edge names its control plane in /api/v1/node; the
 * control plane itself has no such route, and the origin stays.
 */
export async function discoverControlPlane(): Promise<void> {
  try {
    const res = await fetch(`${location.origin}/api/v1/node`)
    if (!res.ok) return
    const info = await res.json()
    if (typeof info?.control_plane_url === 'string' && info.control_plane_url) {
      session.controlPlane = info.control_plane_url
      localStorage.setItem('lyceum.cp', info.control_plane_url)
    }
  } catch { /* served by the control plane */ }
}

export const cp = (path: string, init?: RequestInit) => call(session.controlPlane, path, init)
/** A call to one chosen edge (operator pages ask each edge for its own view). */
export const edgeApi = (base: string, path: string, init?: RequestInit) => call(base, path, init)

export async function connectRegion(): Promise<Candidate | undefined> {
  // The edges ranked last time are asked too: the page's own edge may be
  // the one that died, and the page must still find the others.
  session.edge = await chooser.discover(chooser.seeds([await seedEdge()]))
  regionsSeen.list = [...new Set(chooser.ranked.map((c) => c.region))].sort()
  return session.edge
}

/** An edge to ask for the regions: this origin when it is an edge, else the cluster's first. */
export async function seedEdge(): Promise<string> {
  try {
    const res = await fetch(`${location.origin}/api/v1/regions`)
    if (res.ok) return location.origin
  } catch { /* not an edge */ }
  const probe = new URL(location.origin)
  probe.port = String(Number(probe.port || 80) + 1)
  return probe.origin
}

let entryFiles: Promise<Record<string, string>> | undefined

/**
 * The file name a language's program must have (main.py, Main.java…), as
 * the chosen edge's sandbox names it in /api/v1/languages; asked once.
 */
export async function entryFile(language: string): Promise<string> {
  if (!session.edge) await connectRegion()
  entryFiles ??= chooser
    .withFailover((edge) => call(edge.url, '/api/v1/languages'))
    .then((body) => Object.fromEntries((body.languages ?? []).map((l: any) => [l.id, l.file_name])))
    .catch((e) => { entryFiles = undefined; throw e })
  return (await entryFiles)[language] ?? 'main'
}

/**
 * POST /api/v1/units/{id}/submissions on the chosen edge: the submission
 * that counts, graded against the unit's visible and hidden tests (only the
 * hidden tests' verdicts come back). `question_id` names a quiz's code
 * question. Answers once the control plane has counted it (`recorded`).
 */
export async function submitGraded(unitId: string, body: { files: RunFile[]; question_id?: string }): Promise<any> {
  if (!session.edge) await connectRegion()
  return chooser.withFailover(async (edge) => {
    session.edge = edge
    return call(edge.url, `/api/v1/units/${encodeURIComponent(unitId)}/submissions`, { method: 'POST', body: JSON.stringify(body) })
  })
}

export interface RunFile { name: string; content: string }
export interface RunTest { name: string; stdin?: string; expected_stdout?: string; compare?: string }

/** POST /api/v1/runs on the chosen edge, streaming output pieces to `onOutput`. */
export async function runStreaming(
  body: { language: string; files: RunFile[]; tests?: RunTest[]; stdin?: string; limits?: any },
  onOutput: (stream: string, text: string) => void,
): Promise<any> {
  if (!session.edge) await connectRegion()
  return chooser.withFailover(async (edge) => {
    session.edge = edge
    const res = await fetch(`${edge.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${session.token}` },
      body: JSON.stringify(body),
    })
    if (!res.ok || !res.body) {
      const err = await res.json().catch(() => ({}))
      throw new ApiError(res.status, err?.error?.code ?? 'error', err?.error?.message ?? res.statusText)
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    const parser = new SseParser()
    let result: any
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      for (const ev of parser.push(value)) {
        if (ev.event === 'output') { const o = outputText(ev.data); onOutput(o.stream, o.text) }
        else if (ev.event === 'result') result = JSON.parse(ev.data)
        else if (ev.event === 'error') { const e = JSON.parse(ev.data); throw new ApiError(500, e?.error?.code ?? 'error', e?.error?.message ?? '') }
      }
    }
    return result
  })
}
