// Live audio in the browser (docs/design/media.md, docs/design/web-app.md):
// one RTCPeerConnection to the edge's audio SFU, negotiated over the live
// socket's `media` frames. The browser is the polite side of perfect
// negotiation and makes every offer: `listening_slots` recvonly audio lines
// (the k-th one carries whoever `media_state` puts on slot k), then one
// sendonly line for the microphone while the user may speak. A change of
// who may speak is a new offer; a change of microphone is
// `sender.replaceTrack`, no offer. A `failed` connection or a network
// change restarts ICE; a new `media_config` (the socket resumed, perhaps on
// another edge) throws the connection away and negotiates a fresh one.
// Every async step on the connection runs on one queue, in order, and
// checks that its connection is still the current one. No Vue here: the
// page reads `view()` whenever `onChange` fires.

/** How often quality figures are read from `getStats()`. */
export const STATS_INTERVAL_MS = 2000
/** Most listening slots accepted from a `media_config` (the edge's default is 4). */
export const LISTENING_SLOTS_MAX = 16
/** How long an offer may wait for its answer before it is rolled back and made again. */
export const ANSWER_TIMEOUT_MS = 10_000
/** First wait before offering again after a refused offer; doubles with each refusal in a row. */
export const OFFER_RETRY_MS = 1000
/** Wait after `renegotiation_flood`: the edge's default offer window (`offer_window_ms`). */
export const FLOOD_RETRY_MS = 10_000
/** Refused or unanswered offers in a row after which the page stops offering until the user joins again. */
export const OFFER_FAILURES_MAX = 5
/** Least time between two ICE restarts (a `failed` state and a network change often come together). */
export const ICE_RESTART_MIN_INTERVAL_MS = 2000
/** Most remote candidates held while no remote description is set. */
export const CANDIDATES_PENDING_MAX = 64
/** Most local candidates held until the offer they belong to is sent. */
export const LOCAL_CANDIDATES_PENDING_MAX = 64
/** Most peers read from one `media_state`. */
export const MEDIA_PEERS_MAX = 2000

/** The edge's media error codes (closed set, `MediaErrorCode` on the server). */
export const MEDIA_ERROR_CODES = [
  'malformed_sdp', 'malformed_candidate', 'unknown_peer', 'publish_not_allowed', 'server_muted',
  'too_many_tracks', 'too_many_publishers', 'too_many_peers', 'renegotiation_flood', 'unexpected_answer',
  'negotiation_collision', 'unsupported_media', 'peer_exists', 'bad_id', 'internal', 'media_unavailable',
] as const
/** Failures the page finds itself: no microphone (or no permission), no WebRTC, no answer, a failed step. */
export const LOCAL_ERROR_CODES = ['mic_unavailable', 'no_webrtc', 'answer_timeout', 'negotiation_failed'] as const
export type MediaErrorCode = (typeof MEDIA_ERROR_CODES)[number] | (typeof LOCAL_ERROR_CODES)[number]

const KNOWN_CODES = new Set<string>([...MEDIA_ERROR_CODES, ...LOCAL_ERROR_CODES])
/** The i18n key for a media error code; a code this page does not know reads as `unknown`. */
export function errorKey(code: string): string {
  return `live.audio.errors.${KNOWN_CODES.has(code) ? code : 'unknown'}`
}

/** Refusals that are not about an offer (an offer makes the edge's peer, so it is never `unknown_peer`): nothing to roll back. */
const NOT_ABOUT_OFFERS = new Set(['server_muted', 'malformed_candidate', 'unexpected_answer', 'unknown_peer'])
/** Refusals of an offer worth making again (after a wait, or at once without the microphone). */
const RETRYABLE = new Set(['malformed_sdp', 'internal', 'too_many_peers', 'renegotiation_flood', 'negotiation_collision', 'publish_not_allowed', 'too_many_publishers'])
/** Refusals that mean "offer again, but as a listener". */
const PUBLISH_REFUSALS = new Set(['publish_not_allowed', 'too_many_publishers'])

/** `media_config`: how to build the peer connection. */
export interface MediaConfig { listening_slots: number; ice_servers: RTCIceServer[]; ice_transport_policy: RTCIceTransportPolicy }
/** One peer of the room in `media_state`. */
export interface MediaPeer { peer: string; role: string; may_publish: boolean; slot: number | null; server_muted: boolean; self_muted: boolean }
/** `media_state`: who is in the room and who is on which slot. */
export interface MediaRoomState { room: string; open_mic: boolean; peers: MediaPeer[] }

/** What decides whether a user may speak: her role and the class's audio state. */
export interface Permission { role: string; allowed: boolean; openMic: boolean; serverMuted: boolean }
/** Instructors always; a learner when allowed or while the mic is open, and never while the instructor muted her. */
export function mayPublish(p: Permission): boolean {
  return p.role === 'instructor' || (!p.serverMuted && (p.allowed || p.openMic))
}

/** Connection quality; undefined where nothing has been measured yet. */
export interface Quality { rttMs?: number; jitterMs?: number; packetsLost?: number; lossFraction?: number }
/** One listening slot's inbound audio, raw from `getStats()`. */
export interface SlotStats { slot: number; peer: string | null; mid: string | null; packetsReceived: number; packetsLost: number; jitter: number; totalAudioEnergy: number; audioLevel?: number }
/** Packet totals over every listening slot, kept to compute the loss of the next interval. */
export interface Totals { received: number; lost: number }

// The narrow shape of the browser objects this module uses, so that tests
// can pass fakes; the real ones fit.
export interface TrackLike { readonly id: string; readonly kind: string; enabled: boolean; stop(): void; onended?: ((this: any, ev: any) => any) | null }
export interface StreamLike { getAudioTracks(): TrackLike[] }
export interface TransceiverLike {
  readonly mid: string | null
  direction: RTCRtpTransceiverDirection
  readonly sender: { readonly track: TrackLike | null; replaceTrack(track: TrackLike | null): Promise<void> }
  readonly receiver: { readonly track: TrackLike }
}
export interface StatsLike { forEach(cb: (value: any) => void): void }
export interface PeerLike {
  readonly signalingState: RTCSignalingState
  readonly connectionState: RTCPeerConnectionState
  readonly localDescription: { type: string; sdp: string } | null
  readonly remoteDescription: { type: string; sdp: string } | null
  onicecandidate: ((ev: { candidate: { candidate: string; toJSON(): RTCIceCandidateInit } | null }) => void) | null
  onconnectionstatechange: (() => void) | null
  addTransceiver(trackOrKind: TrackLike | 'audio', init: { direction: RTCRtpTransceiverDirection }): TransceiverLike
  createOffer(): Promise<RTCSessionDescriptionInit>
  createAnswer(): Promise<RTCSessionDescriptionInit>
  setLocalDescription(description: RTCSessionDescriptionInit): Promise<void>
  setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void>
  addIceCandidate(candidate: RTCIceCandidateInit): Promise<void>
  restartIce(): void
  getStats(): Promise<StatsLike>
  close(): void
}

/** What the media session needs from its surroundings. */
export interface MediaDeps {
  /** Sends one signal; the caller wraps it as `{type: "media", signal}` on the live socket. */
  send(signal: Record<string, unknown>): void
  /** Makes a peer connection (the browser's `RTCPeerConnection`; a fake in tests). */
  createPeer(config: RTCConfiguration): PeerLike
  /** Opens the microphone (`deviceId` undefined: the default one). */
  getMicrophone(deviceId: string | undefined): Promise<StreamLike>
  /** Called after anything `view()` shows may have changed. */
  onChange(): void
  /** Calls back on a network change (`online`, `navigator.connection` change); returns the unsubscribe. */
  watchNetwork?(onChange: () => void): () => void
}

/** Everything the page shows about audio. */
export interface MediaView {
  /** A `media_config` arrived on the current socket. */
  available: boolean
  joined: boolean
  /** Bumped for every new peer connection, so the page re-binds its audio elements. */
  generation: number
  connectionState: RTCPeerConnectionState | 'none'
  mayPublish: boolean
  /** Why the user may not speak, when she may not. */
  why?: 'not_allowed' | 'server_muted'
  /** A microphone is being sent (maybe muted by the user). */
  publishing: boolean
  selfMuted: boolean
  micOn: boolean
  deviceId?: string
  /** The peer on each listening slot (null: free). */
  slots: (string | null)[]
  peers: Record<string, MediaPeer>
  room?: string
  openMic: boolean
  speaking: string | null
  quality: Quality
  error?: string
}

/**
 * The audio directions of an SDP's `m=audio` sections, in order (what the
 * edge's offer reader counts: sendonly lines publish, recvonly lines listen).
 */
export function sdpDirections(sdp: string): RTCRtpTransceiverDirection[] {
  return sdp.split(/\r?\n(?=m=)/).filter((s) => s.startsWith('m=audio')).map((s) => {
    const m = s.match(/^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m)
    return (m ? m[1] : 'sendrecv') as RTCRtpTransceiverDirection
  })
}

/** Reads a `media_state` signal; refuses what does not have its shape. */
export function parseMediaState(signal: any): MediaRoomState | undefined {
  if (!signal || typeof signal.room !== 'string' || !Array.isArray(signal.peers)) return undefined
  const peers = signal.peers.slice(0, MEDIA_PEERS_MAX).filter((p: any) => p && typeof p.peer === 'string').map((p: any): MediaPeer => ({
    peer: p.peer,
    role: String(p.role ?? 'learner'),
    may_publish: Boolean(p.may_publish),
    slot: Number.isInteger(p.slot) && p.slot >= 0 ? p.slot : null,
    server_muted: Boolean(p.server_muted),
    self_muted: Boolean(p.self_muted),
  }))
  return { room: signal.room, open_mic: Boolean(signal.open_mic), peers }
}

/** The peer on each of `slots` listening slots, from a `media_state` (slots beyond are ignored). */
export function slotPeers(state: MediaRoomState | undefined, slots: number): (string | null)[] {
  const out: (string | null)[] = Array.from({ length: slots }, () => null)
  for (const p of state?.peers ?? []) if (p.slot !== null && p.slot < slots) out[p.slot] = p.peer
  return out
}

/** Reads a `media_config`; undefined when it lacks its shape. The slot count is clamped to LISTENING_SLOTS_MAX. */
export function parseMediaConfig(signal: any): MediaConfig | undefined {
  const slots = Number(signal?.listening_slots)
  if (!Number.isInteger(slots) || slots < 0) return undefined
  const servers = Array.isArray(signal.ice_servers) ? signal.ice_servers : []
  return {
    listening_slots: Math.min(slots, LISTENING_SLOTS_MAX),
    ice_servers: servers.filter((s: any) => s && (typeof s.urls === 'string' || Array.isArray(s.urls))).map((s: any) => ({ urls: s.urls, username: s.username, credential: s.credential })),
    ice_transport_policy: signal.ice_transport_policy === 'relay' ? 'relay' : 'all',
  }
}

/**
 * Reads a `getStats()` report: each listening slot's inbound audio
 * (matched by `mid`, else by track id), the round-trip time (the selected
 * candidate pair's `currentRoundTripTime`, else `remote-inbound-rtp`'s
 * `roundTripTime`), the worst jitter over slots that received anything,
 * packets lost, and the loss fraction since `prev` (since the start without
 * it; undefined when no packet arrived or was lost in between).
 */
export function parseStats(report: StatsLike, slots: { mid: string | null; trackId: string | null; peer: string | null }[], prev?: Totals): { quality: Quality; slots: SlotStats[]; totals: Totals } {
  const all: any[] = []
  report.forEach((s) => all.push(s))
  const byId = new Map(all.map((s) => [s.id, s]))
  const out: SlotStats[] = slots.map((s, slot) => ({ slot, peer: s.peer, mid: s.mid, packetsReceived: 0, packetsLost: 0, jitter: 0, totalAudioEnergy: 0 }))
  let jitter: number | undefined
  const totals: Totals = { received: 0, lost: 0 }
  let remoteRtt: number | undefined
  let pairRtt: number | undefined
  for (const s of all) {
    if (s.type === 'inbound-rtp' && (s.kind ?? s.mediaType) === 'audio') {
      const received = Number(s.packetsReceived) || 0
      const lost = Number(s.packetsLost) || 0
      totals.received += received
      totals.lost += lost
      if (received > 0 && typeof s.jitter === 'number') jitter = Math.max(jitter ?? 0, s.jitter)
      const k = slots.findIndex((x) => (s.mid != null && x.mid === s.mid) || (s.trackIdentifier != null && x.trackId === s.trackIdentifier))
      if (k >= 0) out[k] = { ...out[k], packetsReceived: received, packetsLost: lost, jitter: Number(s.jitter) || 0, totalAudioEnergy: Number(s.totalAudioEnergy) || 0, audioLevel: typeof s.audioLevel === 'number' ? s.audioLevel : undefined }
    } else if (s.type === 'remote-inbound-rtp' && (s.kind ?? s.mediaType ?? 'audio') === 'audio' && typeof s.roundTripTime === 'number') {
      remoteRtt = Math.max(remoteRtt ?? 0, s.roundTripTime)
    }
  }
  // The candidate pair in use: the one a transport names, else a nominated, succeeded one (or Firefox's `selected`).
  const named = all.filter((s) => s.type === 'transport' && s.selectedCandidatePairId).map((s) => byId.get(s.selectedCandidatePairId)).find(Boolean)
  const pair = named ?? all.find((s) => s.type === 'candidate-pair' && (s.selected || (s.nominated && s.state === 'succeeded')))
  if (pair && typeof pair.currentRoundTripTime === 'number') pairRtt = pair.currentRoundTripTime
  const rtt = pairRtt ?? remoteRtt
  const base = prev && totals.received >= prev.received ? prev : { received: 0, lost: 0 }
  const dReceived = totals.received - base.received
  const dLost = Math.max(0, totals.lost - base.lost)
  const quality: Quality = {
    rttMs: rtt === undefined ? undefined : rtt * 1000,
    jitterMs: jitter === undefined ? undefined : jitter * 1000,
    packetsLost: Math.max(0, totals.lost),
    lossFraction: dReceived + dLost > 0 ? dLost / (dReceived + dLost) : undefined,
  }
  return { quality, slots: out, totals }
}

/** The default network watch: `online` and `navigator.connection`'s `change`. */
export function browserNetworkWatch(onChange: () => void): () => void {
  const connection = (globalThis.navigator as any)?.connection
  connection?.addEventListener?.('change', onChange)
  globalThis.addEventListener?.('online', onChange)
  return () => {
    connection?.removeEventListener?.('change', onChange)
    globalThis.removeEventListener?.('online', onChange)
  }
}

/** A user's audio in one live class: see the module comment. */
export class MediaSession {
  private config?: MediaConfig
  private pc?: PeerLike
  private generation = 0
  private slots: TransceiverLike[] = []
  private micTx?: TransceiverLike
  private mic?: TrackLike
  private joined = false
  private selfMuted = false
  private deviceId?: string
  private classPermission: Permission = { role: 'learner', allowed: false, openMic: false, serverMuted: false }
  private userId?: string
  private roomState?: MediaRoomState
  private speaking: string | null = null
  private quality: Quality = {}
  private totals?: Totals
  private error?: string
  /** Whether the last offer included the microphone. */
  private publishingWanted = false
  /** A publish refusal, with the permission it was refused under: cleared when that changes. */
  private refusedUnder?: string
  private wantOffer = false
  /** Our offer was rolled back for the edge's: it will refuse ours with `negotiation_collision`; offer again after that. */
  private collisionTimer?: ReturnType<typeof setTimeout>
  private failures = 0
  private queue: Promise<void> = Promise.resolve()
  private localCandidates: RTCIceCandidateInit[] = []
  private offerSent = false
  private remoteCandidates: RTCIceCandidateInit[] = []
  private answerTimer?: ReturnType<typeof setTimeout>
  private retryTimer?: ReturnType<typeof setTimeout>
  private restartTimer?: ReturnType<typeof setTimeout>
  private statsTimer?: ReturnType<typeof setInterval>
  private lastRestart = -Infinity
  private unwatch?: () => void

  constructor(private deps: MediaDeps) {}

  /** Applies one server `media` signal. */
  handle(signal: any): void {
    switch (signal?.type) {
      case 'media_config': {
        const config = parseMediaConfig(signal)
        if (!config) return this.fail('media_unavailable')
        this.config = config
        this.roomState = undefined
        this.speaking = null
        if (this.joined) this.start()
        else this.changed()
        return
      }
      case 'answer': return this.onAnswer(String(signal.sdp ?? ''))
      case 'offer': return this.onOffer(String(signal.sdp ?? ''))
      case 'candidate': return this.onCandidate(signal.candidate)
      case 'media_state': return this.onMediaState(signal)
      case 'active_speaker':
        if (this.roomState && signal.room !== this.roomState.room) return
        this.speaking = typeof signal.peer === 'string' ? signal.peer : null
        return this.changed()
      case 'error': return this.onError(String(signal.code ?? 'unknown'))
    }
  }

  /** The class's view of who may speak (welcome role, snapshot and events); `media_state` overrides it for the user herself. */
  setPermission(userId: string | undefined, permission: Permission): void {
    this.userId = userId
    this.classPermission = { ...permission }
    this.permissionMaybeChanged()
  }

  /** Joins audio: a fresh connection as soon as there is a `media_config`. */
  join(): void {
    if (this.joined) return
    this.joined = true
    this.failures = 0
    this.error = undefined
    this.unwatch = this.deps.watchNetwork?.(() => this.restartIce())
    if (this.config) this.start()
    else this.changed()
  }

  /** Leaves audio: tells the edge (so it closes its end at once), closes the connection and the microphone. */
  leave(): void {
    if (this.offerSent) this.deps.send({ type: 'leave' })
    this.joined = false
    this.unwatch?.()
    this.unwatch = undefined
    this.teardown()
    this.stopMic()
    this.roomState = undefined
    this.speaking = null
    this.error = undefined
    this.changed()
  }

  /** The live socket closed: its connection's peer is gone with it; the next socket's `media_config` starts a fresh one. */
  disconnected(): void {
    this.config = undefined
    this.teardown()
    this.stopMic()
    this.roomState = undefined
    this.speaking = null
    this.changed()
  }

  /** The user's own microphone switch (`set_muted`); only while she may speak. */
  setMicOn(on: boolean): void {
    if (!this.effectiveMayPublish()) return
    this.selfMuted = !on
    if (this.mic) this.mic.enabled = on
    // Before the first answer the edge has no peer for her yet; the answer sends a mute then.
    if (this.publishingWanted && this.pc?.remoteDescription) this.deps.send({ type: 'set_muted', muted: !on })
    this.changed()
  }

  /** Another microphone: replaces the sent track in place (no offer) when one is being sent. */
  async setDevice(deviceId: string | undefined): Promise<void> {
    this.deviceId = deviceId || undefined
    this.changed()
    if (!this.mic || !this.micTx) return
    const gen = this.generation
    let next: TrackLike | undefined
    try {
      next = (await this.deps.getMicrophone(this.deviceId)).getAudioTracks()[0]
    } catch {
      return this.fail('mic_unavailable')
    }
    if (!next) return this.fail('mic_unavailable')
    if (gen !== this.generation || !this.micTx || !this.publishingWanted) { next.stop(); return }
    next.enabled = !this.selfMuted
    const old = this.mic
    await this.micTx.sender.replaceTrack(next)
    if (old) { old.onended = null; old.stop() }
    this.watchTrack(next)
    this.mic = next
    this.changed()
  }

  /** Restarts ICE (a new offer with new credentials), at most once per ICE_RESTART_MIN_INTERVAL_MS. */
  restartIce(): void {
    if (!this.pc || !this.joined || this.restartTimer) return
    const wait = this.lastRestart + ICE_RESTART_MIN_INTERVAL_MS - Date.now()
    if (wait > 0) {
      this.restartTimer = setTimeout(() => { this.restartTimer = undefined; this.restartIce() }, wait)
      return
    }
    this.lastRestart = Date.now()
    this.pc.restartIce()
    this.requestOffer()
  }

  /** Whether `userId` is the room's active speaker. */
  isSpeaking(userId: string): boolean {
    return this.speaking === userId
  }

  /** Each listening slot's received track (for the page's audio elements). */
  remoteTracks(): TrackLike[] {
    return this.slots.map((t) => t.receiver.track)
  }

  view(): MediaView {
    const may = this.effectiveMayPublish()
    const self = this.selfPeer()
    const serverMuted = self ? self.server_muted : this.classPermission.serverMuted
    const publishing = this.publishingWanted && Boolean(this.mic)
    return {
      available: Boolean(this.config),
      joined: this.joined,
      generation: this.generation,
      connectionState: this.pc?.connectionState ?? 'none',
      mayPublish: may,
      why: may ? undefined : serverMuted ? 'server_muted' : 'not_allowed',
      publishing,
      selfMuted: this.selfMuted,
      micOn: publishing && !this.selfMuted,
      deviceId: this.deviceId,
      slots: slotPeers(this.roomState, this.slots.length || this.config?.listening_slots || 0),
      peers: Object.fromEntries((this.roomState?.peers ?? []).map((p) => [p.peer, p])),
      room: this.roomState?.room,
      openMic: this.roomState?.open_mic ?? this.classPermission.openMic,
      speaking: this.speaking,
      quality: { ...this.quality },
      error: this.error,
    }
  }

  /** For tests driving a browser: each slot's raw inbound audio now, and the connection's state. */
  async debugStats(): Promise<{ connectionState: string; signalingState: string; publishing: boolean; speaking: string | null; quality: Quality; slots: SlotStats[] }> {
    const pc = this.pc
    if (!pc) return { connectionState: 'none', signalingState: 'none', publishing: false, speaking: this.speaking, quality: {}, slots: [] }
    const { slots } = parseStats(await pc.getStats(), this.slotKeys())
    return { connectionState: pc.connectionState, signalingState: pc.signalingState, publishing: this.view().publishing, speaking: this.speaking, quality: { ...this.quality }, slots }
  }

  /** Stops everything (the page is going away). */
  dispose(): void {
    this.leave()
  }

  // --- connection ---------------------------------------------------------

  private start(): void {
    this.teardown()
    const config = this.config!
    const gen = ++this.generation
    let pc: PeerLike
    try {
      pc = this.deps.createPeer({ iceServers: config.ice_servers, iceTransportPolicy: config.ice_transport_policy })
    } catch {
      return this.fail('no_webrtc')
    }
    this.pc = pc
    this.failures = 0
    this.slots = Array.from({ length: config.listening_slots }, () => pc.addTransceiver('audio', { direction: 'recvonly' }))
    pc.onicecandidate = (e) => {
      if (gen !== this.generation || !e.candidate || !e.candidate.candidate) return
      const init = e.candidate.toJSON()
      if (this.offerSent) this.deps.send({ type: 'candidate', candidate: init })
      else if (this.localCandidates.length < LOCAL_CANDIDATES_PENDING_MAX) this.localCandidates.push(init)
    }
    pc.onconnectionstatechange = () => {
      if (gen !== this.generation) return
      if (pc.connectionState === 'failed') this.restartIce()
      this.changed()
    }
    this.statsTimer = setInterval(() => { void this.readStats(gen) }, STATS_INTERVAL_MS)
    this.requestOffer()
    this.changed()
  }

  /** Closes the connection, keeping the microphone for the next one. */
  private teardown(): void {
    this.generation++
    for (const t of [this.answerTimer, this.retryTimer, this.restartTimer, this.collisionTimer]) if (t) clearTimeout(t)
    if (this.statsTimer) clearInterval(this.statsTimer)
    this.answerTimer = this.retryTimer = this.restartTimer = this.statsTimer = this.collisionTimer = undefined
    if (this.pc) {
      this.pc.onicecandidate = null
      this.pc.onconnectionstatechange = null
      this.pc.close()
    }
    this.pc = undefined
    this.slots = []
    this.micTx = undefined
    this.publishingWanted = false
    this.refusedUnder = undefined
    this.wantOffer = false
    this.offerSent = false
    this.localCandidates = []
    this.remoteCandidates = []
    this.quality = {}
    this.totals = undefined
    this.lastRestart = -Infinity
    this.queue = Promise.resolve()
  }

  private stopMic(): void {
    if (this.mic) { this.mic.onended = null; this.mic.stop() }
    this.mic = undefined
  }

  /** Runs `step` after every earlier step, if its connection is still the current one. */
  private enqueue(step: (pc: PeerLike) => Promise<void>): void {
    const gen = this.generation
    this.queue = this.queue.then(async () => {
      if (gen !== this.generation || !this.pc) return
      try {
        await step(this.pc)
      } catch {
        if (gen === this.generation) this.fail('negotiation_failed')
      }
    })
  }

  private requestOffer(): void {
    this.wantOffer = true
    this.enqueue(() => this.offerIfReady())
  }

  /** Makes the wanted offer when the connection is stable and no retry is waiting. */
  private async offerIfReady(): Promise<void> {
    const pc = this.pc
    if (!pc || !this.wantOffer || pc.signalingState !== 'stable' || this.retryTimer || this.collisionTimer) return
    if (this.failures >= OFFER_FAILURES_MAX) return
    this.wantOffer = false
    const gen = this.generation
    await this.syncMic(pc, gen)
    if (gen !== this.generation) return
    const offer = await pc.createOffer()
    if (gen !== this.generation) return
    this.offerSent = false
    await pc.setLocalDescription(offer)
    if (gen !== this.generation) return
    this.deps.send({ type: 'offer', sdp: pc.localDescription?.sdp ?? offer.sdp ?? '' })
    this.offerSent = true
    for (const c of this.localCandidates.splice(0)) this.deps.send({ type: 'candidate', candidate: c })
    if (this.answerTimer) clearTimeout(this.answerTimer)
    this.answerTimer = setTimeout(() => this.onAnswerTimeout(gen), ANSWER_TIMEOUT_MS)
    this.changed()
  }

  /** Puts the microphone line in the state the next offer should carry. */
  private async syncMic(pc: PeerLike, gen: number): Promise<void> {
    let want = this.effectiveMayPublish() && this.refusedUnder === undefined
    if (want && !this.mic) {
      try {
        const track = (await this.deps.getMicrophone(this.deviceId)).getAudioTracks()[0]
        if (!track) throw new Error('no audio track')
        if (!this.joined) { track.stop(); return }
        if (this.mic) track.stop()
        else { this.mic = track; this.watchTrack(track) }
      } catch {
        this.fail('mic_unavailable')
        want = false
      }
      if (gen !== this.generation) return
    }
    if (want && this.mic) {
      this.mic.enabled = !this.selfMuted
      if (!this.micTx) this.micTx = pc.addTransceiver(this.mic, { direction: 'sendonly' })
      else {
        if (this.micTx.sender.track !== this.mic) await this.micTx.sender.replaceTrack(this.mic)
        this.micTx.direction = 'sendonly'
      }
    } else {
      if (this.micTx) {
        this.micTx.direction = 'inactive'
        await this.micTx.sender.replaceTrack(null)
      }
      this.stopMic()
    }
    this.publishingWanted = want
  }

  /** A microphone unplugged while sending: fall back to the default one in place. */
  private watchTrack(track: TrackLike): void {
    track.onended = () => {
      if (this.mic !== track || !this.micTx) return
      this.deviceId = undefined
      this.mic = undefined
      void this.deps.getMicrophone(undefined).then(async (s) => {
        const next = s.getAudioTracks()[0]
        if (!next || !this.micTx || !this.publishingWanted) { next?.stop(); return }
        next.enabled = !this.selfMuted
        await this.micTx.sender.replaceTrack(next)
        this.watchTrack(next)
        this.mic = next
        this.changed()
      }).catch(() => this.fail('mic_unavailable'))
    }
  }

  private onAnswer(sdp: string): void {
    this.enqueue(async (pc) => {
      if (pc.signalingState !== 'have-local-offer') return // an answer to an offer rolled back since
      await pc.setRemoteDescription({ type: 'answer', sdp })
      if (this.answerTimer) clearTimeout(this.answerTimer)
      this.answerTimer = undefined
      this.failures = 0
      if (this.error && !this.stickyError(this.error)) this.error = undefined
      await this.flushRemoteCandidates(pc)
      if (this.publishingWanted && this.selfMuted) this.deps.send({ type: 'set_muted', muted: true })
      this.changed()
      await this.offerIfReady()
    })
  }

  /** The edge offers (reserved; never needed with slots): the polite side rolls back its own offer and answers. */
  private onOffer(sdp: string): void {
    this.enqueue(async (pc) => {
      let rolledBack = false
      if (pc.signalingState !== 'stable') {
        await pc.setLocalDescription({ type: 'rollback' })
        if (this.answerTimer) clearTimeout(this.answerTimer)
        this.answerTimer = undefined
        rolledBack = true
      }
      await pc.setRemoteDescription({ type: 'offer', sdp })
      const answer = await pc.createAnswer()
      await pc.setLocalDescription(answer)
      this.deps.send({ type: 'answer', sdp: pc.localDescription?.sdp ?? answer.sdp ?? '' })
      await this.flushRemoteCandidates(pc)
      if (rolledBack) {
        // The edge refuses the offer it crossed; offering again before
        // that refusal arrives would have the refusal taken for the new
        // offer's. Wait for it (or, should it never come, a while).
        this.wantOffer = true
        const gen = this.generation
        this.collisionTimer = setTimeout(() => {
          if (gen !== this.generation) return
          this.collisionTimer = undefined
          this.enqueue(() => this.offerIfReady())
        }, ANSWER_TIMEOUT_MS)
      }
      this.changed()
      await this.offerIfReady()
    })
  }

  private onCandidate(candidate: unknown): void {
    if (!candidate || typeof candidate !== 'object') return
    const init = candidate as RTCIceCandidateInit
    this.enqueue(async (pc) => {
      if (!pc.remoteDescription) {
        if (this.remoteCandidates.length < CANDIDATES_PENDING_MAX) this.remoteCandidates.push(init)
        return
      }
      await pc.addIceCandidate(init).catch(() => {}) // a candidate for a description rolled back since
    })
  }

  private async flushRemoteCandidates(pc: PeerLike): Promise<void> {
    for (const c of this.remoteCandidates.splice(0)) await pc.addIceCandidate(c).catch(() => {})
  }

  private onAnswerTimeout(gen: number): void {
    if (gen !== this.generation) return
    this.answerTimer = undefined
    this.enqueue(async (pc) => {
      if (pc.signalingState !== 'have-local-offer') return
      await pc.setLocalDescription({ type: 'rollback' })
      this.error = 'answer_timeout'
      this.failures++
      this.retryLater(OFFER_RETRY_MS * 2 ** (this.failures - 1))
      this.changed()
    })
  }

  private onError(code: string): void {
    // A collision is part of perfect negotiation, not something to show.
    if (code !== 'negotiation_collision') this.error = code
    if (code === 'server_muted') {
      this.selfMuted = true
      if (this.mic) this.mic.enabled = false
    }
    this.changed()
    if (NOT_ABOUT_OFFERS.has(code)) return
    this.enqueue(async (pc) => {
      if (code === 'negotiation_collision' && this.collisionTimer) {
        // The refusal of the offer rolled back for the edge's (queued
        // after it, so this runs once the edge's offer is answered).
        clearTimeout(this.collisionTimer)
        this.collisionTimer = undefined
        await this.offerIfReady()
        return
      }
      if (pc.signalingState !== 'have-local-offer') return
      await pc.setLocalDescription({ type: 'rollback' })
      if (this.answerTimer) clearTimeout(this.answerTimer)
      this.answerTimer = undefined
      this.failures++
      if (!RETRYABLE.has(code)) return
      if (PUBLISH_REFUSALS.has(code) && this.publishingWanted) {
        // Offer again at once, as a listener, until what allowed the mic changes.
        this.refusedUnder = this.permissionSignature()
        this.wantOffer = true
        await this.offerIfReady()
        return
      }
      if (code === 'negotiation_collision') {
        // Refused while still out (the edge's offer comes next): offer again once stable.
        this.wantOffer = true
        await this.offerIfReady()
        return
      }
      this.retryLater(code === 'renegotiation_flood' ? FLOOD_RETRY_MS : OFFER_RETRY_MS * 2 ** (this.failures - 1))
    })
  }

  private retryLater(ms: number): void {
    if (this.failures >= OFFER_FAILURES_MAX) return
    this.wantOffer = true
    const gen = this.generation
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => {
      if (gen !== this.generation) return
      this.retryTimer = undefined
      this.enqueue(() => this.offerIfReady())
    }, ms)
  }

  private onMediaState(signal: unknown): void {
    const state = parseMediaState(signal)
    if (!state) return
    if (this.roomState?.room !== state.room) this.speaking = null
    this.roomState = state
    this.permissionMaybeChanged()
  }

  // --- permission ---------------------------------------------------------

  private selfPeer(): MediaPeer | undefined {
    return this.userId ? this.roomState?.peers.find((p) => p.peer === this.userId) : undefined
  }

  /** The class's permission, unless the edge's `media_state` says otherwise for the user herself (it is what refuses an offer). */
  private effectivePermission(): Permission {
    const self = this.selfPeer()
    if (!self) return this.classPermission
    const role = this.classPermission.role === 'instructor' ? 'instructor' : self.role
    return { role, allowed: self.may_publish, openMic: Boolean(this.roomState?.open_mic), serverMuted: self.server_muted }
  }

  private effectiveMayPublish(): boolean {
    return mayPublish(this.effectivePermission())
  }

  /**
   * What a publish refusal depends on: the permission, what the edge last
   * said about the user, and whether a slot is free. The microphone is
   * offered again only once one of them changes.
   */
  private permissionSignature(): string {
    const self = this.selfPeer()
    const taken = (this.roomState?.peers ?? []).filter((p) => p.slot !== null).length
    return JSON.stringify([this.effectiveMayPublish(), self?.may_publish, self?.server_muted, this.roomState?.open_mic, taken < (this.config?.listening_slots ?? 0)])
  }

  private permissionMaybeChanged(): void {
    if (this.refusedUnder !== undefined && this.refusedUnder !== this.permissionSignature()) {
      this.refusedUnder = undefined
      if (this.error && PUBLISH_REFUSALS.has(this.error)) this.error = undefined
    }
    const want = this.effectiveMayPublish() && this.refusedUnder === undefined
    if (this.pc && this.joined && want !== this.publishingWanted) this.requestOffer()
    this.changed()
  }

  // --- stats --------------------------------------------------------------

  private slotKeys(): { mid: string | null; trackId: string | null; peer: string | null }[] {
    const peers = slotPeers(this.roomState, this.slots.length)
    return this.slots.map((t, k) => ({ mid: t.mid, trackId: t.receiver.track?.id ?? null, peer: peers[k] }))
  }

  private async readStats(gen: number): Promise<void> {
    const pc = this.pc
    if (!pc || gen !== this.generation) return
    try {
      const report = await pc.getStats()
      if (gen !== this.generation) return
      const { quality, totals } = parseStats(report, this.slotKeys(), this.totals)
      this.quality = quality
      this.totals = totals
      this.changed()
    } catch {
      // A connection closing under the read: the next interval reads the next one.
    }
  }

  /** Errors an answer does not clear: no microphone, or a publish refusal still in force. */
  private stickyError(code: string): boolean {
    return code === 'mic_unavailable' || (PUBLISH_REFUSALS.has(code) && this.refusedUnder !== undefined)
  }

  private fail(code: string): void {
    this.error = code
    this.changed()
  }

  private changed(): void {
    this.deps.onChange()
  }
}
