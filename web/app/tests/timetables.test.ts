import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { codeLabel, importFailure, importPath, mediaTypeFor, placeParts, zonedTime } from '../src/timetables'

describe('timetable upload', () => {
  it('sends a file by its extension, in any case, and nothing else', () => {
    const check = (name: string, expected: string | undefined) => expect(mediaTypeFor(name), name).toBe(expected)
    check('maths.ics', 'text/calendar')
    check('MATHS.ICS', 'text/calendar')
    check('term 1.csv', 'text/csv')
    check('export.Csv', 'text/csv')
    check('notes.txt', undefined)
    check('calendar.ics.txt', undefined)
    check('csv', undefined)
    check('', undefined)
  })

  it('builds the import query: dry run, partial (only when importing), name', () => {
    expect(importPath({ dryRun: true, partial: false, name: '' })).toBe('/api/v1/timetables?dry_run=true')
    expect(importPath({ dryRun: true, partial: true, name: ' Term 1 ' })).toBe('/api/v1/timetables?dry_run=true&name=Term+1')
    expect(importPath({ dryRun: false, partial: false, name: '' })).toBe('/api/v1/timetables')
    expect(importPath({ dryRun: false, partial: true, name: 'a&b=c' })).toBe('/api/v1/timetables?partial=true&name=a%26b%3Dc')
  })
})

describe('refused imports', () => {
  const problem = { code: 'unknown_time_zone', line: 3, property: 'time_zone', message: 'time zone "Mars/Base" is not an iana name' }

  it('reads the problems of a 422 timetable_invalid, dropping malformed ones', () => {
    const f = importFailure({ status: 422, code: 'timetable_invalid', message: 'line 3, time_zone: ...', problems: [problem, { code: 7 }, null] })
    expect(f).toEqual({ kind: 'invalid', problems: [problem], message: 'line 3, time_zone: ...' })
  })

  it('names a body too large, a wrong media type and a conflict', () => {
    expect(importFailure({ status: 413, code: 'payload_too_large', message: 'the file is larger than 1048576 bytes' }).kind).toBe('too_large')
    expect(importFailure({ status: 413, code: 'error', message: 'Payload Too Large' }).kind).toBe('too_large')
    expect(importFailure({ status: 415, code: 'unsupported_media_type', message: '' }).kind).toBe('unsupported')
    expect(importFailure({ status: 409, code: 'conflict', message: 'uids in two timetables' }).kind).toBe('conflict')
  })

  it('keeps anything else as it came, problems or not', () => {
    expect(importFailure({ status: 403, code: 'forbidden', message: 'this needs one of the roles', problems: [problem] }))
      .toEqual({ kind: 'other', problems: [], message: 'this needs one of the roles' })
    expect(importFailure(new TypeError('Failed to fetch'))).toEqual({ kind: 'other', problems: [], message: 'Failed to fetch' })
  })
})

describe('problem places and codes', () => {
  it('lists the parts of a place in reading order', () => {
    expect(placeParts({ line: 3, property: 'time_zone' })).toEqual([{ kind: 'line', value: '3' }, { kind: 'property', value: 'time_zone' }])
    expect(placeParts({ component: 'VEVENT #3 (UID maths-7a)', property: 'RRULE' }))
      .toEqual([{ kind: 'component', value: 'VEVENT #3 (UID maths-7a)' }, { kind: 'property', value: 'RRULE' }])
    expect(placeParts({})).toEqual([])
  })

  it('puts words to known codes and falls back to the code itself', () => {
    const words: Record<string, string> = { 'p.bad_date': 'Invalid date or time' }
    const has = (k: string) => k in words
    const tr = (k: string) => words[k]
    expect(codeLabel('p', 'bad_date', has, tr)).toBe('Invalid date or time')
    expect(codeLabel('p', 'brand_new_code', has, tr)).toBe('brand_new_code')
    expect(codeLabel('p', 'a.b', () => true, tr)).toBe('a.b')
  })

  it('has words for every problem and note code in every locale', () => {
    const problems = ['bad_calendar', 'bad_encoding', 'bad_delimiter', 'missing_field', 'bad_date', 'bad_recurrence', 'unknown_time_zone',
      'unknown_region', 'too_many_learners', 'too_many_events', 'validation_failed', 'not_found']
    const notes = ['occurrences_capped', 'no_end', 'all_day_skipped', 'cancelled_skipped', 'override_skipped']
    for (const code of ['en', 'es', 'fr', 'de', 'pt', 'zh', 'ja', 'hi', 'ar', 'ru']) {
      const tree = JSON.parse(readFileSync(join(__dirname, '..', 'src', 'locales', 'instructor', `${code}.json`), 'utf8'))
      const tt = tree.instructor.timetables
      for (const p of problems) expect(tt.problem[p], `${code}: problem ${p}`).toBeTruthy()
      for (const n of notes) expect(tt.note[n], `${code}: note ${n}`).toBeTruthy()
      for (const c of ['created', 'updated', 'unchanged']) expect(tt.change[c], `${code}: change ${c}`).toBeTruthy()
      expect(tree.nav.timetables, `${code}: nav`).toBeTruthy()
    }
  })
})

describe('times in an event\'s zone', () => {
  it('shows an instant in the event\'s own zone and in UTC', () => {
    // ICU puts a narrow no-break space before AM in newer versions.
    const plain = (s: string) => s.replace(/\s/g, ' ')
    expect(plain(zonedTime('2031-09-01T09:00:00+02:00', 'Europe/Paris', 'en'))).toBe('Sep 1, 2031, 9:00 AM')
    expect(plain(zonedTime('2031-09-01T07:00:00Z', 'UTC', 'en'))).toBe('Sep 1, 2031, 7:00 AM')
    expect(plain(zonedTime('2031-09-01T07:00:00Z', 'Asia/Kolkata', 'en'))).toBe('Sep 1, 2031, 12:30 PM')
  })

  it('leaves the server\'s text when the zone or the time is not understood', () => {
    expect(zonedTime('2031-09-01T09:00:00+02:00', 'Not/AZone', 'en')).toBe('2031-09-01T09:00:00+02:00')
    expect(zonedTime('tomorrow', 'UTC', 'en')).toBe('tomorrow')
  })
})
