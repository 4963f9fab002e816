import { describe, expect, it } from 'vitest'
import { SseParser, outputText } from '../src/sse'

describe('run-output stream parser', () => {
  it('parses events split across chunks', () => {
    const p = new SseParser()
    expect(p.push('event: output\ndata: {"step":"run","case":0,"stream":"stdout","da')).toEqual([])
    const evs = p.push('ta":"hi\\n"}\n\nevent: result\r\ndata: {"status":"accepted"}\r\n\r\n')
    expect(evs.map((e) => e.event)).toEqual(['output', 'result'])
    expect(outputText(evs[0].data)).toEqual({ stream: 'stdout', text: 'hi\n' })
    expect(JSON.parse(evs[1].data).status).toBe('accepted')
  })

  it('ignores comments (keep-alives) and joins multi-line data', () => {
    const p = new SseParser()
    expect(p.push(':keep-alive\n\n')).toEqual([])
    expect(p.push('data: a\ndata: b\n\n')).toEqual([{ event: 'message', data: 'a\nb' }])
  })

  it('reads plain-text output leniently', () => {
    expect(outputText('not json')).toEqual({ stream: 'stdout', text: 'not json' })
  })
})
