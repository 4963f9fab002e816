// Parser for the edge's run stream (text/event-stream): `output` events carry
// pieces of stdout/stderr as they come, one `result` event carries the final
// run JSON. Kept free of DOM types so vitest can test it directly.

export interface SseEvent { event: string; data: string }

/** Incremental parser: feed it chunks, it returns the complete events. */
export class SseParser {
  private buffer = ''

  push(chunk: string): SseEvent[] {
    this.buffer += chunk.replace(/\r\n/g, '\n')
    const events: SseEvent[] = []
    let end = this.buffer.indexOf('\n\n')
    while (end >= 0) {
      const block = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      let event = 'message'
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        let value = colon < 0 ? '' : line.slice(colon + 1)
        if (value.startsWith(' ')) value = value.slice(1)
        if (field === 'event') event = value
        else if (field === 'data') data.push(value)
      }
      if (data.length > 0 || event !== 'message') events.push({ event, data: data.join('\n') })
      end = this.buffer.indexOf('\n\n')
    }
    return events
  }
}

/** What an `output` event carries, leniently read. */
export function outputText(data: string): { stream: string; text: string } {
  try {
    const v = JSON.parse(data)
    if (typeof v === 'string') return { stream: 'stdout', text: v }
    const text = v.text ?? v.data ?? v.chunk ?? ''
    return { stream: v.stream ?? 'stdout', text: String(text) }
  } catch {
    return { stream: 'stdout', text: data }
  }
}
