import { describe, expect, it } from 'vitest'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

const LOCALES = ['en', 'es', 'fr', 'de', 'pt', 'zh', 'ja', 'hi', 'ar', 'ru']
const dir = join(__dirname, '..', 'src')

/** One locale's strings: locales/<code>.json plus every locales/<area>/<code>.json, merged. */
function load(code: string): any {
  const out: any = {}
  const merge = (into: any, from: any) => {
    for (const [k, v] of Object.entries(from)) {
      if (v && typeof v === 'object') merge((into[k] ??= {}), v)
      else into[k] = v
    }
  }
  for (const f of files(join(dir, 'locales')).filter((f) => f.endsWith(`/${code}.json`))) merge(out, JSON.parse(readFileSync(f, 'utf8')))
  return out
}

function keys(obj: any, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) => (typeof v === 'object' ? keys(v, `${prefix}${k}.`) : [`${prefix}${k}`]))
}
function files(d: string): string[] {
  return readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? files(join(d, f)) : [join(d, f)]))
}

describe('translations', () => {
  const en = load('en')
  it('has ten locales, each with every key and the same placeholders', () => {
    const reference = keys(en).sort()
    for (const code of LOCALES) {
      const messages = load(code)
      expect(keys(messages).sort(), code).toEqual(reference)
      for (const k of reference) {
        const get = (o: any) => k.split('.').reduce((a, p) => a[p], o) as string
        const ph = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort()
        expect(get(messages).length, `${code}:${k}`).toBeGreaterThan(0)
        expect(ph(get(messages)), `${code}:${k}`).toEqual(ph(get(en)))
      }
    }
  })

  it('every key used in the code exists', () => {
    const reference = new Set(keys(en))
    for (const f of files(dir).filter((f) => /\.(vue|ts)$/.test(f))) {
      for (const m of readFileSync(f, 'utf8').matchAll(/\bt\('([\w.]+)'/g)) expect(reference.has(m[1]), `${f}: ${m[1]}`).toBe(true)
    }
  })

  it('templates hold no hard-coded user-facing text', () => {
    const offenders: string[] = []
    for (const f of files(dir).filter((f) => f.endsWith('.vue'))) {
      const src = readFileSync(f, 'utf8')
      const template = src.slice(src.indexOf('<template>'), src.lastIndexOf('</template>'))
      const text = template
        .replace(/\{\{[\s\S]*?\}\}/g, ' ')
        .replace(/<[^>]*>/g, '\n')
      for (const line of text.split('\n')) {
        const s = line.replace(/[\s—–\-·:|/()]+/g, '')
        if (/\p{L}/u.test(s)) offenders.push(`${f}: ${line.trim()}`)
      }
      for (const m of template.matchAll(/\s(?:aria-label|placeholder|title|alt)="([^"]*)"/g)) offenders.push(`${f}: static attribute ${m[0].trim()}`)
    }
    expect(offenders).toEqual([])
  })
})
