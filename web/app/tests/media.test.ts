import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  ANSWER_TIMEOUT_MS, FLOOD_RETRY_MS, ICE_RESTART_MIN_INTERVAL_MS, LISTENING_SLOTS_MAX, LOCAL_ERROR_CODES, MEDIA_ERROR_CODES, OFFER_FAILURES_MAX, OFFER_RETRY_MS, STATS_INTERVAL_MS,
  MediaSession, errorKey, mayPublish, parseMediaConfig, parseStats, sdpDirections, slotPeers,
  type PeerLike, type StatsLike, type TrackLike, type TransceiverLike,
} from '../src/media'
import { apply, classPermission, emptyState } from '../src/live'

// A fake RTCPeerConnection: it keeps transceivers in order, writes an SDP
// with one m=audio section per transceiver (its direction, and an ICE
// ufrag that changes on restartIce), and follows the signaling states the
// way a browser does, refusing what a browser refuses.

class FakeTrack implements TrackLike {
  kind = 'audio'
  enabled = true
  stopped = false
  onended: (() => void) | null = null
  constructor(public id: string) {}
  stop() { this.stopped = true }
}

class FakeTransceiver implements TransceiverLike {
  mid: string | null = null
  sender: { track: TrackLike | null; replaceTrack(t: TrackLike | null): Promise<void> }
  receiver: { track: TrackLike }
  constructor(public direction: RTCRtpTransceiverDirection, track: TrackLike | null, index: number, public pc: FakePc) {
    this.receiver = { track: new FakeTrack(`remote-${pc.id}-${index}`) }
    const sender = {
      track,
      replaceTrack: async (t: TrackLike | null) => { pc.log.push(`replaceTrack:${t?.id ?? 'null'}`); sender.track = t },
    }
    this.sender = sender
  }
}

let pcCount = 0
class FakePc implements PeerLike {
  id = ++pcCount
  signalingState: RTCSignalingState = 'stable'
  connectionState: RTCPeerConnectionState = 'new'
  localDescription: { type: string; sdp: string } | null = null
  remoteDescription: { type: string; sdp: string } | null = null
  onicecandidate: PeerLike['onicecandidate'] = null
  onconnectionstatechange: (() => void) | null = null
  transceivers: FakeTransceiver[] = []
  log: string[] = []
  candidates: RTCIceCandidateInit[] = []
  ufrag = 0
  closed = false
  stats: StatsLike = new Map()
  private stableLocal: { type: string; sdp: string } | null = null
  constructor(public config: RTCConfiguration) {}
  addTransceiver(trackOrKind: TrackLike | 'audio', init: { direction: RTCRtpTransceiverDirection }) {
    if (this.closed) throw new Error('closed')
    const t = new FakeTransceiver(init.direction, trackOrKind === 'audio' ? null : trackOrKind, this.transceivers.length, this)
    this.transceivers.push(t)
    this.log.push(`addTransceiver:${init.direction}`)
    return t
  }
  sdp() {
    return ['v=0', `a=ice-ufrag:u${this.ufrag}`, ...this.transceivers.flatMap((t, i) => [`m=audio 9 UDP/TLS/RTP/SAVPF 111`, `a=mid:${i}`, `a=${t.direction}`])].join('\r\n') + '\r\n'
  }
  async createOffer() { this.log.push('createOffer'); return { type: 'offer' as const, sdp: this.sdp() } }
  async createAnswer() {
    if (this.signalingState !== 'have-remote-offer') throw new Error('no remote offer')
    return { type: 'answer' as const, sdp: `answer-from-${this.id}` }
  }
  async setLocalDescription(d: RTCSessionDescriptionInit) {
    this.log.push(`setLocal:${d.type}`)
    if (d.type === 'rollback') {
      if (this.signalingState === 'stable') throw new Error('nothing to roll back')
      this.signalingState = 'stable'
      this.localDescription = this.stableLocal
      return
    }
    if (d.type === 'offer') {
      if (this.signalingState !== 'stable' && this.signalingState !== 'have-local-offer') throw new Error(`offer in ${this.signalingState}`)
      this.transceivers.forEach((t, i) => { t.mid = String(i) })
      this.signalingState = 'have-local-offer'
    } else {
      if (this.signalingState !== 'have-remote-offer') throw new Error(`answer in ${this.signalingState}`)
      this.signalingState = 'stable'
    }
    this.localDescription = { type: d.type!, sdp: d.sdp! }
    if (d.type === 'answer') this.stableLocal = this.localDescription
  }
  async setRemoteDescription(d: RTCSessionDescriptionInit) {
    this.log.push(`setRemote:${d.type}`)
    if (d.type === 'offer') {
      if (this.signalingState !== 'stable') throw new Error('glare: the polite side must roll back first')
      this.signalingState = 'have-remote-offer'
    } else {
      if (this.signalingState !== 'have-local-offer') throw new Error(`answer in ${this.signalingState}`)
      this.signalingState = 'stable'
      this.stableLocal = this.localDescription
    }
    this.remoteDescription = { type: d.type!, sdp: d.sdp! }
  }
  async addIceCandidate(c: RTCIceCandidateInit) { this.candidates.push(c) }
  restartIce() { this.ufrag++; this.log.push('restartIce') }
  async getStats() { return this.stats }
  close() { this.closed = true; this.connectionState = 'closed' }
  /** The browser gathered a candidate. */
  gather(candidate: string) {
    this.onicecandidate?.({ candidate: { candidate, toJSON: () => ({ candidate, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'f' }) } })
  }
  setConnection(state: RTCPeerConnectionState) { this.connectionState = state; this.onconnectionstatechange?.() }
}

const CONFIG = { type: 'media_config', listening_slots: 4, ice_servers: [{ urls: ['turn:host:3478?transport=udp'], username: 'u', credential: 'c' }], ice_transport_policy: 'all' }

/** A session wired to fakes; `sent` holds every signal it sent, `pcs` every connection it made. */
function setup(opts: { micFails?: boolean } = {}) {
  const sent: any[] = []
  const pcs: FakePc[] = []
  const mics: FakeTrack[] = []
  const asked: (string | undefined)[] = []
  let network: (() => void) | undefined
  const session = new MediaSession({
    send: (s) => sent.push(s),
    createPeer: (config) => { const pc = new FakePc(config); pcs.push(pc); return pc },
    getMicrophone: async (deviceId) => {
      asked.push(deviceId)
      if (opts.micFails) throw new Error('NotAllowedError')
      const t = new FakeTrack(`mic-${mics.length + 1}${deviceId ? `-${deviceId}` : ''}`)
      mics.push(t)
      return { getAudioTracks: () => [t] }
    },
    onChange: () => {},
    watchNetwork: (cb) => { network = cb; return () => { network = undefined } },
  })
  const pc = () => pcs[pcs.length - 1]
  const offers = () => sent.filter((s) => s.type === 'offer')
  const lastOffer = () => offers()[offers().length - 1]
  /** Lets every queued step run. */
  const settle = () => vi.advanceTimersByTimeAsync(0)
  const answer = async () => { session.handle({ type: 'answer', sdp: 'v=0 answer' }); await settle() }
  const directions = () => sdpDirections(lastOffer().sdp)
  const count = (dir: string) => directions().filter((d) => d === dir).length
  return { session, sent, pcs, pc, mics, asked, offers, lastOffer, settle, answer, directions, count, network: () => network?.() }
}

const learner = (over: Partial<{ allowed: boolean; openMic: boolean; serverMuted: boolean }> = {}) => ({ role: 'learner', allowed: false, openMic: false, serverMuted: false, ...over })

beforeEach(() => { vi.useFakeTimers() })
afterEach(() => { vi.useRealTimers() })

describe('media: offers', () => {
  it('a learner not allowed offers only her listening slots, recvonly, and no microphone', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    expect(m.pc().config).toEqual({ iceServers: [{ urls: ['turn:host:3478?transport=udp'], username: 'u', credential: 'c' }], iceTransportPolicy: 'all' })
    expect(m.offers().length).toBe(1)
    expect(m.directions()).toEqual(['recvonly', 'recvonly', 'recvonly', 'recvonly'])
    expect(m.asked).toEqual([])
    expect(m.session.view()).toMatchObject({ joined: true, mayPublish: false, why: 'not_allowed', publishing: false, micOn: false })
  })

  it('an instructor offers the slots first, then one sendonly microphone', async () => {
    const m = setup()
    m.session.setPermission('prof', { role: 'instructor', allowed: false, openMic: false, serverMuted: false })
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    expect(m.directions()).toEqual(['recvonly', 'recvonly', 'recvonly', 'recvonly', 'sendonly'])
    expect(m.pc().log.filter((l) => l.startsWith('addTransceiver'))).toEqual([...Array(4).fill('addTransceiver:recvonly'), 'addTransceiver:sendonly'])
    expect(m.session.view()).toMatchObject({ publishing: true, micOn: true, mayPublish: true })
  })

  it('waits for a media_config before connecting, and makes exactly listening_slots listening lines', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.join()
    await m.settle()
    expect(m.pcs.length).toBe(0)
    expect(m.session.view().available).toBe(false)
    m.session.handle({ ...CONFIG, listening_slots: 2 })
    await m.settle()
    expect(m.count('recvonly')).toBe(2)
    expect(parseMediaConfig({ ...CONFIG, listening_slots: 1000 })?.listening_slots).toBe(LISTENING_SLOTS_MAX)
    expect(parseMediaConfig({ ...CONFIG, listening_slots: -1 })).toBeUndefined()
    expect(parseMediaConfig({ ...CONFIG, ice_transport_policy: 'relay' })?.ice_transport_policy).toBe('relay')
  })

  it('renegotiates when a learner is allowed, then revoked, and again when the mic opens', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await m.answer()
    m.session.setPermission('ada', learner({ allowed: true }))
    await m.settle()
    expect(m.offers().length).toBe(2)
    expect(m.count('sendonly')).toBe(1)
    expect(m.count('recvonly')).toBe(4)
    await m.answer()
    // The same permission again is no new offer.
    m.session.setPermission('ada', learner({ allowed: true }))
    await m.settle()
    expect(m.offers().length).toBe(2)
    // Revoked: the microphone line goes inactive, its track is released.
    m.session.setPermission('ada', learner())
    await m.settle()
    expect(m.offers().length).toBe(3)
    expect(m.count('sendonly')).toBe(0)
    expect(m.directions()).toEqual(['recvonly', 'recvonly', 'recvonly', 'recvonly', 'inactive'])
    expect(m.mics[0].stopped).toBe(true)
    expect(m.session.view().publishing).toBe(false)
    await m.answer()
    // Open mic: the same line sends again, with a new microphone track.
    m.session.setPermission('ada', learner({ openMic: true }))
    await m.settle()
    expect(m.directions()).toEqual(['recvonly', 'recvonly', 'recvonly', 'recvonly', 'sendonly'])
    expect(m.pc().transceivers[4].sender.track?.id).toBe('mic-2')
    await m.answer()
    // Muted by the instructor even with the mic open: no microphone.
    m.session.setPermission('ada', learner({ openMic: true, serverMuted: true }))
    await m.settle()
    expect(m.count('sendonly')).toBe(0)
    expect(m.session.view().why).toBe('server_muted')
  })

  it('holds a second offer until the first is answered', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.setPermission('ada', learner({ allowed: true }))
    await m.settle()
    expect(m.offers().length).toBe(1)
    await m.answer()
    expect(m.offers().length).toBe(2)
    expect(m.count('sendonly')).toBe(1)
  })

  it("media_state about the user herself decides over the class's view", async () => {
    const m = setup()
    m.session.setPermission('ada', learner({ allowed: true }))
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    expect(m.count('sendonly')).toBe(1)
    await m.answer()
    m.session.handle({ type: 'media_state', room: 'c1', open_mic: false, peers: [{ peer: 'ada', role: 'learner', may_publish: false, slot: 0, server_muted: false, self_muted: false }] })
    await m.settle()
    expect(m.count('sendonly')).toBe(0)
    await m.answer()
    // The room's open mic counts even when the peer's own flag is off.
    m.session.handle({ type: 'media_state', room: 'c1', open_mic: true, peers: [{ peer: 'ada', role: 'learner', may_publish: false, slot: null, server_muted: false, self_muted: false }] })
    await m.settle()
    expect(m.count('sendonly')).toBe(1)
  })

  it('sends each gathered candidate after its offer, and skips the end of candidates', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    m.pc().gather('candidate:1 1 udp 1 10.0.0.1 5000 typ host')
    m.pc().onicecandidate?.({ candidate: null })
    m.pc().gather('')
    await m.settle()
    m.pc().gather('candidate:2 1 udp 1 10.0.0.2 5000 typ host')
    expect(m.sent.map((s) => s.type)).toEqual(['offer', 'candidate', 'candidate'])
    expect(m.sent[1]).toEqual({ type: 'candidate', candidate: { candidate: 'candidate:1 1 udp 1 10.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'f' } })
  })

  it("adds the edge's candidates once its answer is set", async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    const c = { candidate: 'candidate:9 1 udp 1 192.0.2.1 4000 typ host', sdpMid: '0', sdpMLineIndex: 0 }
    m.session.handle({ type: 'candidate', candidate: c })
    await m.settle()
    expect(m.pc().candidates).toEqual([])
    await m.answer()
    expect(m.pc().candidates).toEqual([c])
    m.session.handle({ type: 'candidate', candidate: { ...c, candidate: 'candidate:10' } })
    await m.settle()
    expect(m.pc().candidates.length).toBe(2)
  })
})

describe('media: the microphone', () => {
  it('mic switch sets track.enabled and sends set_muted; a server_muted refusal turns it back off', async () => {
    const m = setup()
    m.session.setPermission('ada', learner({ allowed: true }))
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await m.answer()
    m.session.setMicOn(false)
    expect(m.mics[0].enabled).toBe(false)
    expect(m.sent.at(-1)).toEqual({ type: 'set_muted', muted: true })
    m.session.setMicOn(true)
    expect(m.mics[0].enabled).toBe(true)
    expect(m.sent.at(-1)).toEqual({ type: 'set_muted', muted: false })
    m.session.handle({ type: 'error', code: 'server_muted', message: 'muted by the instructor' })
    await m.settle()
    expect(m.mics[0].enabled).toBe(false)
    expect(m.session.view()).toMatchObject({ selfMuted: true, micOn: false, error: 'server_muted' })
    // Not a refusal of an offer: nothing rolled back, no new offer.
    expect(m.pc().log).not.toContain('setLocal:rollback')
  })

  it('a switch before the first answer waits for it (the edge has no peer yet)', async () => {
    const m = setup()
    m.session.setPermission('prof', { role: 'instructor', allowed: false, openMic: false, serverMuted: false })
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.setMicOn(false)
    expect(m.sent.map((s) => s.type)).toEqual(['offer'])
    expect(m.mics[0].enabled).toBe(false)
    await m.answer()
    expect(m.sent.at(-1)).toEqual({ type: 'set_muted', muted: true })
    // An unknown_peer refusal (of a frame that is not an offer) rolls nothing back.
    m.session.setPermission('prof', { role: 'instructor', allowed: true, openMic: false, serverMuted: false })
    m.session.handle({ type: 'error', code: 'unknown_peer', message: 'x' })
    await m.settle()
    expect(m.pc().log).not.toContain('setLocal:rollback')
  })

  it('the switch does nothing while the user may not speak', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.setMicOn(false)
    expect(m.sent.filter((s) => s.type === 'set_muted')).toEqual([])
    expect(m.session.view().selfMuted).toBe(false)
  })

  it('a new device replaces the track in place, without an offer', async () => {
    const m = setup()
    m.session.setPermission('prof', { role: 'instructor', allowed: false, openMic: false, serverMuted: false })
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await m.answer()
    m.session.setMicOn(false)
    await m.session.setDevice('usb')
    expect(m.asked).toEqual([undefined, 'usb'])
    expect(m.pc().transceivers[4].sender.track?.id).toBe('mic-2-usb')
    expect(m.mics[0].stopped).toBe(true)
    expect(m.mics[1].enabled).toBe(false) // still muted by the user
    expect(m.offers().length).toBe(1)
    // Unplugged: back to the default microphone, still in place.
    m.mics[1].onended?.()
    await m.settle()
    expect(m.pc().transceivers[4].sender.track?.id).toBe('mic-3')
    expect(m.offers().length).toBe(1)
  })

  it('without a microphone it offers as a listener and says why', async () => {
    const m = setup({ micFails: true })
    m.session.setPermission('prof', { role: 'instructor', allowed: false, openMic: false, serverMuted: false })
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    expect(m.count('sendonly')).toBe(0)
    expect(m.count('recvonly')).toBe(4)
    expect(m.session.view().error).toBe('mic_unavailable')
    await m.answer()
    expect(m.session.view().error).toBe('mic_unavailable')
  })

  it('a self-muted user says so again to a fresh connection', async () => {
    const m = setup()
    m.session.setPermission('prof', { role: 'instructor', allowed: false, openMic: false, serverMuted: false })
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await m.answer()
    m.session.setMicOn(false)
    m.sent.length = 0
    m.session.handle(CONFIG) // resumed elsewhere
    await m.settle()
    await m.answer()
    expect(m.sent.map((s) => s.type)).toEqual(['offer', 'set_muted'])
    expect(m.sent[1]).toEqual({ type: 'set_muted', muted: true })
  })
})

describe('media: perfect negotiation, the polite side', () => {
  it("rolls back its own offer when the edge's offer collides, answers, then offers again", async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    expect(m.pc().signalingState).toBe('have-local-offer')
    m.session.handle({ type: 'offer', sdp: 'v=0 edge offer' })
    await m.settle()
    expect(m.pc().log.slice(-3)).toEqual(['setLocal:rollback', 'setRemote:offer', 'setLocal:answer'])
    const answers = m.sent.filter((s) => s.type === 'answer')
    expect(answers).toEqual([{ type: 'answer', sdp: `answer-from-${m.pc().id}` }])
    // The edge refuses the crossed offer: only then is the next one made.
    expect(m.offers().length).toBe(1)
    m.session.handle({ type: 'error', code: 'negotiation_collision', message: 'collision' })
    await m.settle()
    expect(m.offers().length).toBe(2)
    expect(m.pc().signalingState).toBe('have-local-offer')
    expect(m.session.view().error).toBeUndefined()
    await m.answer()
    expect(m.pc().signalingState).toBe('stable')
  })

  it('the edge offer and its refusal of ours may arrive together', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.handle({ type: 'offer', sdp: 'v=0 edge offer' })
    m.session.handle({ type: 'error', code: 'negotiation_collision', message: 'collision' })
    await m.settle()
    expect(m.sent.map((s) => s.type)).toEqual(['offer', 'answer', 'offer'])
    expect(m.session.view().error).toBeUndefined()
    await m.answer()
    expect(m.pc().signalingState).toBe('stable')
  })

  it('offers again after a collision even if its refusal never comes', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.handle({ type: 'offer', sdp: 'v=0 edge offer' })
    await m.settle()
    await vi.advanceTimersByTimeAsync(ANSWER_TIMEOUT_MS - 1)
    expect(m.offers().length).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(m.offers().length).toBe(2)
  })

  it("answers the edge's offer without a rollback when stable", async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await m.answer()
    m.session.handle({ type: 'offer', sdp: 'v=0 edge offer' })
    await m.settle()
    expect(m.pc().log).not.toContain('setLocal:rollback')
    expect(m.sent.at(-1).type).toBe('answer')
    expect(m.offers().length).toBe(1)
  })

  it('ignores an answer when no offer is out', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await m.answer()
    await m.answer()
    expect(m.session.view().error).toBeUndefined()
  })

  it('a publish refusal rolls back and offers again as a listener, until the permission changes', async () => {
    const m = setup()
    m.session.setPermission('ada', learner({ allowed: true }))
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    expect(m.count('sendonly')).toBe(1)
    m.session.handle({ type: 'error', code: 'publish_not_allowed', message: 'no' })
    await m.settle()
    expect(m.pc().log).toContain('setLocal:rollback')
    expect(m.offers().length).toBe(2)
    expect(m.count('sendonly')).toBe(0)
    await m.answer()
    expect(m.session.view().error).toBe('publish_not_allowed')
    // The edge now says she may: the microphone is offered again.
    m.session.handle({ type: 'media_state', room: 'c1', open_mic: false, peers: [{ peer: 'ada', role: 'learner', may_publish: true, slot: null, server_muted: false, self_muted: false }] })
    await m.settle()
    expect(m.offers().length).toBe(3)
    expect(m.count('sendonly')).toBe(1)
    await m.answer()
    expect(m.session.view().error).toBeUndefined()
  })

  it('a refused offer is made again after a wait, longer for a flood, and not forever', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.handle({ type: 'error', code: 'renegotiation_flood', message: 'slow down' })
    await m.settle()
    expect(m.pc().signalingState).toBe('stable')
    await vi.advanceTimersByTimeAsync(FLOOD_RETRY_MS - 1)
    expect(m.offers().length).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(m.offers().length).toBe(2)
    for (let i = 2; i <= OFFER_FAILURES_MAX; i++) {
      m.session.handle({ type: 'error', code: 'internal', message: 'x' })
      await m.settle()
      await vi.advanceTimersByTimeAsync(OFFER_RETRY_MS * 2 ** (i - 1))
    }
    const made = m.offers().length
    expect(made).toBe(OFFER_FAILURES_MAX)
    m.session.handle({ type: 'error', code: 'internal', message: 'x' })
    await vi.advanceTimersByTimeAsync(60_000)
    expect(m.offers().length).toBe(made)
    expect(m.session.view().error).toBe('internal')
  })

  it('a refusal that cannot get better is not retried', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.handle({ type: 'error', code: 'unsupported_media', message: 'x' })
    await vi.advanceTimersByTimeAsync(60_000)
    expect(m.offers().length).toBe(1)
    expect(m.pc().signalingState).toBe('stable')
  })

  it('an unanswered offer is rolled back and made again', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await vi.advanceTimersByTimeAsync(ANSWER_TIMEOUT_MS)
    expect(m.session.view().error).toBe('answer_timeout')
    expect(m.pc().signalingState).toBe('stable')
    await vi.advanceTimersByTimeAsync(OFFER_RETRY_MS)
    expect(m.offers().length).toBe(2)
    await m.answer()
    expect(m.session.view().error).toBeUndefined()
  })
})

describe('media: ICE restarts and resumes', () => {
  it('restarts ICE when the connection fails and when the network changes, at a bounded rate', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await m.answer()
    const ufrag = (sdp: string) => sdp.match(/ice-ufrag:(\w+)/)![1]
    const first = ufrag(m.lastOffer().sdp)
    m.pc().setConnection('failed')
    await m.settle()
    expect(m.pc().log.filter((l) => l === 'restartIce').length).toBe(1)
    expect(m.offers().length).toBe(2)
    expect(ufrag(m.lastOffer().sdp)).not.toBe(first)
    await m.answer()
    m.network()
    await m.settle()
    expect(m.pc().log.filter((l) => l === 'restartIce').length).toBe(1)
    await vi.advanceTimersByTimeAsync(ICE_RESTART_MIN_INTERVAL_MS)
    expect(m.pc().log.filter((l) => l === 'restartIce').length).toBe(2)
    expect(m.offers().length).toBe(3)
  })

  it('a new media_config closes the old connection and negotiates a fresh one; a closed socket closes it', async () => {
    const m = setup()
    m.session.setPermission('prof', { role: 'instructor', allowed: false, openMic: false, serverMuted: false })
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    const old = m.pc()
    m.session.handle({ type: 'answer', sdp: 'x' }) // in flight when the socket went
    m.session.handle({ ...CONFIG, listening_slots: 3, ice_transport_policy: 'relay' })
    await m.settle()
    expect(old.closed).toBe(true)
    expect(m.pcs.length).toBe(2)
    expect(m.pc().config.iceTransportPolicy).toBe('relay')
    expect(m.directions()).toEqual(['recvonly', 'recvonly', 'recvonly', 'sendonly'])
    // The microphone is kept across connections.
    expect(m.asked.length).toBe(1)
    expect(m.pc().transceivers[3].sender.track?.id).toBe('mic-1')
    // Late candidates of the old connection are not sent.
    const before = m.sent.length
    old.gather('candidate:old')
    expect(m.sent.length).toBe(before)
    m.session.disconnected()
    expect(m.pc().closed).toBe(true)
    expect(m.mics[0].stopped).toBe(true)
    expect(m.session.view()).toMatchObject({ available: false, joined: true, connectionState: 'none' })
    m.session.handle(CONFIG)
    await m.settle()
    expect(m.pcs.length).toBe(3)
  })

  it('leaving closes everything; a media_config while not joined makes no connection', async () => {
    const m = setup()
    m.session.setPermission('prof', { role: 'instructor', allowed: false, openMic: false, serverMuted: false })
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.leave()
    expect(m.sent.at(-1)).toEqual({ type: 'leave' })
    expect(m.pc().closed).toBe(true)
    expect(m.mics[0].stopped).toBe(true)
    m.session.handle(CONFIG)
    await vi.advanceTimersByTimeAsync(STATS_INTERVAL_MS * 3)
    expect(m.pcs.length).toBe(1)
    m.network()
    expect(m.pcs[0].log).not.toContain('restartIce')
  })
})

describe('media: who is where, who speaks', () => {
  it('maps slots to user ids from media_state', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    m.session.handle({ type: 'media_state', room: 'c1', open_mic: false, peers: [
      { peer: 'prof', role: 'instructor', may_publish: true, slot: 2, server_muted: false, self_muted: false },
      { peer: 'bo', role: 'learner', may_publish: true, slot: 0, server_muted: true, self_muted: false },
      { peer: 'ada', role: 'learner', may_publish: false, slot: null, server_muted: false, self_muted: false },
      { peer: 'far', role: 'learner', may_publish: true, slot: 9, server_muted: false, self_muted: false },
    ] })
    const v = m.session.view()
    expect(v.slots).toEqual(['bo', null, 'prof', null])
    expect(v.peers.bo.server_muted).toBe(true)
    expect(v.room).toBe('c1')
    expect(m.session.remoteTracks().map((t) => t.id)).toEqual([0, 1, 2, 3].map((k) => `remote-${m.pc().id}-${k}`))
    expect(slotPeers(undefined, 2)).toEqual([null, null])
  })

  it('follows the active speaker of its own room only', async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    m.session.handle({ type: 'media_state', room: 'c1', open_mic: false, peers: [] })
    m.session.handle({ type: 'active_speaker', room: 'c1', peer: 'prof' })
    expect(m.session.isSpeaking('prof')).toBe(true)
    expect(m.session.isSpeaking('ada')).toBe(false)
    m.session.handle({ type: 'active_speaker', room: 'c1/2', peer: 'bo' })
    expect(m.session.view().speaking).toBe('prof')
    m.session.handle({ type: 'active_speaker', room: 'c1', peer: null })
    expect(m.session.view().speaking).toBeNull()
    // Moved to a breakout room: the old room's speaker is forgotten.
    m.session.handle({ type: 'active_speaker', room: 'c1', peer: 'prof' })
    m.session.handle({ type: 'media_state', room: 'c1/2', open_mic: false, peers: [] })
    expect(m.session.view().speaking).toBeNull()
  })
})

describe('media: quality', () => {
  // What Chromium reports, trimmed to the fields read.
  const report = (received: number, lost: number, extra: any[] = []) => new Map<string, any>([
    ['T1', { id: 'T1', type: 'transport', selectedCandidatePairId: 'CP2' }],
    ['CP1', { id: 'CP1', type: 'candidate-pair', state: 'failed', nominated: false, currentRoundTripTime: 0.9 }],
    ['CP2', { id: 'CP2', type: 'candidate-pair', state: 'succeeded', nominated: true, currentRoundTripTime: 0.042 }],
    ['IA', { id: 'IA', type: 'inbound-rtp', kind: 'audio', mid: '0', trackIdentifier: 'ta', packetsReceived: received, packetsLost: lost, jitter: 0.012, totalAudioEnergy: 0.5, audioLevel: 0.2 }],
    ['IB', { id: 'IB', type: 'inbound-rtp', kind: 'audio', trackIdentifier: 'tb', packetsReceived: 10, packetsLost: 0, jitter: 0.03, totalAudioEnergy: 0.1 }],
    ['IC', { id: 'IC', type: 'inbound-rtp', kind: 'audio', mid: '3', packetsReceived: 0, packetsLost: 0, jitter: 0.5 }],
    ['OV', { id: 'OV', type: 'inbound-rtp', kind: 'video', mid: '9', packetsReceived: 1000, packetsLost: 1000, jitter: 9 }],
    ...extra.map((s) => [s.id, s] as [string, any]),
  ])
  const keys = [{ mid: '0', trackId: 'ta', peer: 'prof' }, { mid: '1', trackId: 'tb', peer: 'bo' }, { mid: '2', trackId: 'tc', peer: null }]

  it('reads RTT from the selected pair, jitter and loss from inbound audio, and each slot', () => {
    const { quality, slots, totals } = parseStats(report(90, 10), keys)
    expect(quality.rttMs).toBeCloseTo(42)
    expect(quality.jitterMs).toBeCloseTo(30) // the worst slot that received anything
    expect(quality.packetsLost).toBe(10)
    expect(quality.lossFraction).toBeCloseTo(10 / 110)
    expect(totals).toEqual({ received: 100, lost: 10 })
    expect(slots.map((s) => [s.slot, s.peer, s.packetsReceived, s.totalAudioEnergy])).toEqual([[0, 'prof', 90, 0.5], [1, 'bo', 10, 0.1], [2, null, 0, 0]])
    expect(slots[0].audioLevel).toBe(0.2)
  })

  it('the loss fraction is over the interval since the last reading', () => {
    const first = parseStats(report(90, 10), keys)
    const next = parseStats(report(190, 10), keys, first.totals)
    expect(next.quality.lossFraction).toBe(0)
    const worse = parseStats(report(280, 20), keys, next.totals)
    expect(worse.quality.lossFraction).toBeCloseTo(10 / 100)
    // No packet either way in between: unknown, not zero.
    expect(parseStats(report(280, 20), keys, worse.totals).quality.lossFraction).toBeUndefined()
  })

  it('falls back to remote-inbound-rtp for RTT, and has nothing to say about an empty report', () => {
    const noPair = new Map<string, any>([['R', { id: 'R', type: 'remote-inbound-rtp', kind: 'audio', roundTripTime: 0.08 }]])
    expect(parseStats(noPair, []).quality.rttMs).toBeCloseTo(80)
    const empty = parseStats(new Map(), keys)
    expect(empty.quality).toEqual({ rttMs: undefined, jitterMs: undefined, packetsLost: 0, lossFraction: undefined })
    // Firefox marks the pair in use `selected`.
    const ff = new Map<string, any>([['P', { id: 'P', type: 'candidate-pair', selected: true, currentRoundTripTime: 0.01 }]])
    expect(parseStats(ff, []).quality.rttMs).toBeCloseTo(10)
  })

  it(`reads the connection's stats every ${STATS_INTERVAL_MS} ms, and the raw slots on demand`, async () => {
    const m = setup()
    m.session.setPermission('ada', learner())
    m.session.handle(CONFIG)
    m.session.join()
    await m.settle()
    await m.answer()
    m.pc().stats = report(90, 10)
    expect(m.session.view().quality).toEqual({})
    await vi.advanceTimersByTimeAsync(STATS_INTERVAL_MS - 1)
    expect(m.session.view().quality).toEqual({})
    await vi.advanceTimersByTimeAsync(1)
    expect(m.session.view().quality.rttMs).toBeCloseTo(42)
    m.session.handle({ type: 'media_state', room: 'c1', open_mic: false, peers: [{ peer: 'prof', role: 'instructor', may_publish: true, slot: 0, server_muted: false, self_muted: false }] })
    m.pc().setConnection('connected')
    const raw = await m.session.debugStats()
    expect(raw.connectionState).toBe('connected')
    expect(raw.slots[0]).toMatchObject({ slot: 0, peer: 'prof', mid: '0', packetsReceived: 90, totalAudioEnergy: 0.5 })
    expect(raw.slots.length).toBe(4)
  })
})

describe('media: permission and errors', () => {
  it('who may speak', () => {
    const check = (p: Parameters<typeof mayPublish>[0], expected: boolean) => expect(mayPublish(p), JSON.stringify(p)).toBe(expected)
    check({ role: 'instructor', allowed: false, openMic: false, serverMuted: false }, true)
    check(learner(), false)
    check(learner({ allowed: true }), true)
    check(learner({ openMic: true }), true)
    check(learner({ allowed: true, serverMuted: true }), false)
    check(learner({ openMic: true, serverMuted: true }), false)
  })

  it('maps every error code to a key every locale has, and an unknown one to `unknown`', () => {
    const en = JSON.parse(readFileSync(join(__dirname, '..', 'src', 'locales', 'live', 'en.json'), 'utf8'))
    for (const code of [...MEDIA_ERROR_CODES, ...LOCAL_ERROR_CODES, 'something_new']) {
      const key = errorKey(code)
      expect(key).toBe(`live.audio.errors.${code === 'something_new' ? 'unknown' : code}`)
      expect(key.split('.').reduce((o: any, k) => o?.[k], en), key).toEqual(expect.any(String))
    }
  })

  it('reads audio lines from a browser-shaped SDP', () => {
    const sdp = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendonly\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sendrecv\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\n'
    expect(sdpDirections(sdp)).toEqual(['recvonly', 'sendonly', 'sendrecv'])
  })
})

describe('class audio state', () => {
  it('folds the snapshot and the allow, mute and open mic events; media frames are not events', () => {
    const s = emptyState()
    apply(s, { type: 'welcome', seq: 1, role: 'learner', user_id: 'ada', region: 'eu', node_id: 'n', epoch: 1, resumed: false })
    apply(s, { type: 'snapshot', seq: 4, state: { roster: [], audio: { open_mic: false, allowed: ['bo'], muted: [] } } })
    expect(classPermission(s)).toEqual({ role: 'learner', allowed: false, openMic: false, serverMuted: false })
    apply(s, { type: 'allow_to_speak', seq: 5, user_id: 'ada', allowed: true })
    expect(classPermission(s).allowed).toBe(true)
    apply(s, { type: 'mute', seq: 6, user_id: 'ada', muted: true })
    expect(mayPublish(classPermission(s))).toBe(false)
    apply(s, { type: 'mute', seq: 7, user_id: 'ada', muted: false })
    apply(s, { type: 'allow_to_speak', seq: 8, user_id: 'ada', allowed: false })
    apply(s, { type: 'open_mic', seq: 9, open: true })
    expect(s.audio).toEqual({ open_mic: true, allowed: ['bo'], muted: [] })
    // Seen twice: ignored; a media frame does not move the position.
    apply(s, { type: 'open_mic', seq: 9, open: false })
    apply(s, { v: 1, type: 'media', seq: 100, signal: { type: 'active_speaker', room: 'c', peer: null } })
    expect(s.audio.open_mic).toBe(true)
    expect(s.seq).toBe(9)
    // A snapshot without audio: nobody allowed.
    apply(s, { type: 'snapshot', seq: 10, state: { roster: [] } })
    expect(s.audio).toEqual({ open_mic: false, allowed: [], muted: [] })
  })
})
