// End-to-end test of the learner surface: starts a REAL dev cluster (the
// built `lyceum` binary from $WEB_E2E_BIN, its own data dir and free ports,
// the real Docker sandbox), drives Debian's Chromium headless through
// playwright-core, and saves a screenshot of every page to e2e-artifacts/.
// Exits non-zero on any failure (scripts/test judges by exit code).
import { spawn } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

const bin = process.env.WEB_E2E_BIN
if (!bin || !existsSync(bin)) { console.error(`e2e: WEB_E2E_BIN (${bin}) is not a built lyceum binary`); process.exit(1) }
if (!existsSync('/usr/bin/chromium')) { console.error('e2e: /usr/bin/chromium missing (scripts/services.sh chromium)'); process.exit(1) }
const artifacts = join(process.cwd(), 'e2e-artifacts')
// A fresh folder each run, so no screenshot (or failure.png) is left from an earlier one.
rmSync(artifacts, { recursive: true, force: true })
mkdirSync(artifacts, { recursive: true })
// The repository's drill catalogue, for the operator's chaos console (the
// supervisor lists it; this test starts no drill).
const drillsDir = fileURLToPath(new URL('../../../chaos/drills', import.meta.url))
if (!existsSync(drillsDir)) { console.error(`e2e: the drill catalogue ${drillsDir} is missing`); process.exit(1) }
const dataDir = mkdtempSync(join(tmpdir(), 'lyceum-e2e-'))
// Every browser's fake microphone plays this: a 440 Hz tone, made here so
// nothing is downloaded (48 kHz, 16-bit mono PCM, 2 s; Chromium loops it).
const toneWav = join(dataDir, 'tone.wav')
{
  const rate = 48_000
  const samples = rate * 2
  const wav = Buffer.alloc(44 + samples * 2)
  wav.write('RIFF', 0); wav.writeUInt32LE(36 + samples * 2, 4); wav.write('WAVE', 8)
  wav.write('fmt ', 12); wav.writeUInt32LE(16, 16); wav.writeUInt16LE(1, 20); wav.writeUInt16LE(1, 22)
  wav.writeUInt32LE(rate, 24); wav.writeUInt32LE(rate * 2, 28); wav.writeUInt16LE(2, 32); wav.writeUInt16LE(16, 34)
  wav.write('data', 36); wav.writeUInt32LE(samples * 2, 40)
  for (let i = 0; i < samples; i++) wav.writeInt16LE(Math.round(16_000 * Math.sin(2 * Math.PI * 440 * i / rate)), 44 + i * 2)
  writeFileSync(toneWav, wav)
}
const cluster = spawn(bin, ['dev', '--base-port', '0', '--data-dir', dataDir], {
  stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, LYCEUM_DEV__DRILLS_DIR: drillsDir },
})
let browser
let learner // a second person's browser, for the live class
let current // the page, for a screenshot when a step fails
const step = (m) => console.error(`e2e: ${m}`)

async function waitForCluster() {
  const file = join(dataDir, 'cluster.json')
  for (let i = 0; i < 600; i++) {
    if (cluster.exitCode !== null) throw new Error(`lyceum dev exited with ${cluster.exitCode}`)
    if (existsSync(file)) {
      try {
        const c = JSON.parse(readFileSync(file, 'utf8'))
        const ready = await fetch(`${c.control_plane.url}/readyz`).then((r) => r.ok).catch(() => false)
        const edges = await Promise.all(c.edges.map((e) => fetch(`${e.url}/readyz`).then((r) => r.ok).catch(() => false)))
        if (ready && edges.every(Boolean)) return c
      } catch { /* being written */ }
    }
    await new Promise((r) => setTimeout(r, 500))
  }
  throw new Error('cluster not ready after 300 s')
}

/**
 * Checks the page with axe-core against WCAG 2 A and AA (labels, names,
 * contrast, landmarks, ARIA use) and fails on any serious or critical
 * violation, naming the rule and the elements.
 */
async function audit(page, name) {
  await page.addScriptTag({ path: axePath })
  const found = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } })
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`)
  })
  if (found.length) throw new Error(`accessibility on ${name}:\n  ${found.join('\n  ')}`)
}

/** Signs in on the sign-in page `page` is on (or is sent to), and waits for the catalogue. */
async function signIn(page, email, password) {
  await page.waitForURL('**/sign-in')
  await page.fill('input[name=email]', email)
  await page.fill('input[name=password]', password)
  await page.click('button[type=submit]')
  await page.waitForURL('**/courses')
}

/**
 * The learner's lesson page on `page` shows the lesson's title as its
 * heading and the Markdown rendered (a `#` heading as an element under it,
 * inline code as code), with no Markdown marks left as text.
 */
async function checkLessonPage(page, title, heading) {
  const text = page.getByTestId('lesson-text')
  await text.waitFor()
  const shown = (await page.getByTestId('lesson-title').textContent())?.trim()
  if (shown !== title) throw new Error(`the lesson page's heading is "${shown}", not "${title}"`)
  await text.locator('h2', { hasText: heading }).waitFor()
  if ((await text.locator('code').count()) < 1) throw new Error('inline code is not rendered as code')
  const marks = await text.evaluate((el) => Array.from(el.querySelectorAll('p, li, h2, h3')).map((e) => e.textContent).join(' '))
  if (/\*\*|(^|\s)#\s|`/.test(marks)) throw new Error(`Markdown shown literally on the lesson page: ${marks.slice(0, 200)}`)
}

/**
 * The instructor builds a course with one unit of each kind in the
 * builders and publishes it; the assignment only once its reference
 * solution has passed every test, visible and hidden.
 */
async function buildCourse(page, base, shot) {
  await page.goto(`${base}/instructor/courses`)
  await page.fill('[data-testid=course-title]', 'Loops in Python')
  await page.fill('[data-testid=course-summary]', 'Repeat yourself, on purpose.')
  await page.getByTestId('create-course').click()
  await page.waitForURL(/\/instructor\/courses\/[^/]+$/)
  const courseUrl = page.url()
  await page.fill('[data-testid=module-title]', 'Basics')
  await page.getByTestId('add-module').click()
  await page.locator('[data-module=Basics]').waitFor()
  const newUnit = async (kind, title) => {
    await page.goto(courseUrl)
    const form = page.locator('[data-module=Basics] form')
    await form.locator('[data-testid=unit-kind]').selectOption(kind)
    await form.locator('[data-testid=unit-title]').fill(title)
    await form.locator('[data-testid=add-unit]').click()
    await page.waitForURL(/\/instructor\/units\/[^/]+$/)
    await page.locator(`.builder[data-kind=${kind}]`).waitFor()
  }
  const publish = async () => {
    await page.getByTestId('publish').click()
    await page.locator('[data-testid=unit-state][data-published="1"]').waitFor()
  }
  const code = async (testid, text) => {
    await page.locator(`[data-testid=${testid}] .cm-content`).click()
    await page.keyboard.press('Control+A')
    await page.keyboard.press('Delete')
    await page.keyboard.insertText(text)
  }

  // The lesson's Markdown: rendered as the learner sees it, with the code
  // block highlighted like the editor, and an author's attempt at script
  // shown as text that runs nothing.
  await newUnit('lesson', 'What a loop is')
  const lessonUrl = page.url()
  await page.fill('[data-testid=lesson-markdown]', [
    '# Loops',
    'A **loop** repeats a block: `for` runs it once for every item.',
    '```python\nfor name in ["Ada", "Alan"]:\n    print("hello, " + name)  # one line each\n```',
    '<script>window.__pwned=1</script>',
    '<img src=x onerror="window.__pwned=1">',
  ].join('\n\n'))
  await page.getByTestId('lesson-preview').locator('pre.code span').first().waitFor()
  if ((await page.evaluate(() => window.__pwned)) !== undefined) throw new Error('an author\'s script ran in the builder\'s preview')
  await shot('11b-lesson-builder')
  await publish()
  await page.goto(lessonUrl.replace('/instructor/units/', '/lessons/'))
  await checkLessonPage(page, 'What a loop is', 'Loops')
  await page.getByTestId('lesson-text').locator('pre.code').waitFor()
  const lessonText = page.getByTestId('lesson-text')
  if ((await lessonText.locator('strong', { hasText: 'loop' }).count()) !== 1) throw new Error('**loop** is not bold on the lesson page')
  const pre = lessonText.locator('pre.code')
  if ((await pre.getAttribute('dir')) !== 'ltr') throw new Error('the code block is not left to right')
  if ((await pre.locator('span').count()) < 3) throw new Error('the code block is not highlighted')
  // The editor's colours: CodeMirror's default style paints keywords #708.
  const keyword = await pre.locator('span', { hasText: /^for$/ }).first().evaluate((el) => getComputedStyle(el).color)
  if (keyword !== 'rgb(119, 0, 136)') throw new Error(`the keyword "for" is ${keyword}, not the editor's #708`)
  if ((await lessonText.locator('script, img, [onerror]').count()) !== 0) throw new Error('an author\'s raw HTML reached the lesson page')
  if (!(await lessonText.textContent()).includes('<script>window.__pwned=1</script>')) throw new Error('the author\'s raw HTML is not shown as text')
  if ((await page.evaluate(() => window.__pwned)) !== undefined) throw new Error('an author\'s script ran on the lesson page')
  await shot('11c-lesson-rendered')

  // The quiz: one question of each type; it opens after the lesson.
  await newUnit('quiz', 'Loops quiz')
  const q = (i) => page.locator(`[data-question="${i}"]`)
  await q(0).locator('[data-field=prompt]').fill('Which keyword starts a loop over items?')
  await q(0).locator('[data-field=choice]').nth(0).fill('if')
  await q(0).locator('[data-field=choice]').nth(1).fill('for')
  await q(0).locator('[data-field=right]').nth(1).check()
  await page.getByTestId('add-multiple_choice').click()
  await q(1).locator('[data-field=prompt]').fill('Which of these loop?')
  await q(1).locator('[data-field=choice]').nth(0).fill('while')
  await q(1).locator('[data-field=choice]').nth(1).fill('def')
  await page.getByTestId('add-short_answer').click()
  await q(2).locator('[data-field=prompt]').fill('Which statement leaves a loop early?')
  await q(2).locator('[data-field=accepted]').fill('break')
  await page.getByTestId('add-code').click()
  await q(3).locator('[data-field=prompt]').fill('Print the numbers 1 to n, one per line.')
  await q(3).locator('[data-testid=code-visible-tests] [data-testid=add-test]').click()
  await q(3).locator('[data-testid=code-visible-tests] [data-field=stdin]').fill('3')
  await q(3).locator('[data-testid=code-visible-tests] [data-field=expected]').fill('1\n2\n3')
  await q(3).locator('[data-testid=code-hidden-tests] [data-testid=add-test]').click()
  await q(3).locator('[data-testid=code-hidden-tests] [data-field=stdin]').fill('1')
  await q(3).locator('[data-testid=code-hidden-tests] [data-field=expected]').fill('1')
  await page.getByTestId('prerequisite-unit').selectOption({ label: 'What a loop is' })
  await page.getByTestId('add-prerequisite').click()
  await page.locator('[data-testid=prerequisites] li', { hasText: 'What a loop is' }).waitFor()
  await publish()
  await shot('12-quiz-builder')

  // The assignment: publishing waits for the reference solution to pass
  // the visible and the hidden tests; a wrong one fails them first.
  await newUnit('assignment', 'Sum to n')
  await page.locator('[data-testid=visible-tests] [data-field=stdin]').fill('3')
  await page.locator('[data-testid=visible-tests] [data-field=expected]').fill('6')
  await page.locator('[data-testid=hidden-tests] [data-testid=add-test]').click()
  await page.locator('[data-testid=hidden-tests] [data-field=stdin]').fill('10')
  await page.locator('[data-testid=hidden-tests] [data-field=expected]').fill('55')
  await code('starter-editor', 'n = int(input())\n')
  if (await page.getByTestId('publish').isEnabled()) throw new Error('an assignment could be published before its reference solution ran')
  await code('reference-editor', 'n = int(input())\nprint(n * 2)\n')
  await page.getByTestId('run-reference').click()
  await page.locator('[data-testid=reference-verdict][data-ok=false]').waitFor({ timeout: 120_000 })
  if (await page.getByTestId('publish').isEnabled()) throw new Error('an assignment could be published with a failing reference solution')
  await code('reference-editor', 'n = int(input())\nprint(sum(range(1, n + 1)))\n')
  await page.getByTestId('run-reference').click()
  await page.locator('[data-testid=reference-verdict][data-ok=true]').waitFor({ timeout: 120_000 })
  await shot('13-assignment-builder')
  await publish()

  await newUnit('live_classroom', 'Loops, live')
  await page.fill('[data-testid=live-cohort]', 'spring')
  await publish()

  await page.goto(courseUrl)
  const units = page.locator('[data-testid=builder-units] li')
  await units.nth(3).waitFor()
  const kinds = await units.evaluateAll((li) => li.map((l) => `${l.dataset.unitKind}:${l.dataset.published}`))
  if (kinds.join(',') !== 'lesson:1,quiz:1,assignment:1,live_classroom:1') throw new Error(`the built course has ${kinds}`)
  await shot('14-course-builder')

  // The organisation's catalogue is public (the demo's is): server-rendered
  // HTML that needs no account and no JavaScript, with the new course in it.
  await page.goto(`${base}/instructor/courses`)
  if (!(await page.getByTestId('catalogue-public').isChecked())) throw new Error('the demo catalogue is not public')
  const catalogueUrl = await page.getByTestId('catalogue-link').getAttribute('href')
  const html = await fetch(catalogueUrl).then((r) => r.text())
  if (!html.includes('Python from zero') || !html.includes('Loops in Python')) throw new Error(`the public catalogue lacks a course: ${html.slice(0, 400)}`)
  await page.goto(catalogueUrl)
  await page.getByRole('heading', { name: /Courses from/ }).waitFor()
  await shot('15-public-catalogue')
}

async function main() {
  const c = await waitForCluster()
  // Learners open their nearest edge; it serves the app and names the control plane.
  const base = c.edges[0].url
  step(`cluster up; the app from the ${c.edges[0].region} edge ${base}, control plane ${c.control_plane.url}`)
  // A persistent context: Chromium refuses --user-data-dir as a plain flag under Playwright.
  // Each person gets their own browser profile (their own localStorage).
  const launch = () => chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'lyceum-chromium-')), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1100, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      // Live audio: a fake microphone playing the tone, no permission prompt, audio plays without a gesture.
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${toneWav}`,
      '--autoplay-policy=no-user-gesture-required'],
  })
  browser = await launch()
  const page = await browser.newPage()
  page.setDefaultTimeout(60_000)
  page.on('pageerror', (e) => console.error(`e2e: page error: ${e.message}`))
  page.on('console', (m) => { if (m.type() === 'error') console.error(`e2e: console: ${m.text()}`) })
  current = page
  // Every page we take a picture of is also checked for accessibility.
  const shot = async (name) => {
    await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true })
    await audit(page, name)
  }

  await page.goto(`${base}/sign-up`)
  await page.fill('input[name=display_name]', 'Ada')
  const adaEmail = `ada-${Date.now()}@e2e.lyceum.test`
  await page.fill('input[name=email]', adaEmail)
  await page.fill('input[name=password]', 'correct-horse-battery')
  await shot('01-sign-up')
  await page.click('button[type=submit]')
  await page.waitForURL('**/courses')
  await page.getByText('Python from zero').waitFor()
  await page.getByTestId('region').getByText(/Connected to region/).waitFor()
  await shot('02-catalogue')
  step('signed up, catalogue shown, region chosen')

  await page.locator('a.button.primary').first().click()
  await page.getByTestId('enroll').click()
  await page.locator('[data-state=open]').first().waitFor()
  await shot('03-course-path')
  const lessonNode = page.locator('.path .node').first()
  if ((await lessonNode.getAttribute('data-state')) !== 'open') throw new Error('the lesson is not open after enrolling')
  if ((await page.locator('.path .node[data-state=locked]').count()) < 1) throw new Error('nothing is locked on a fresh path')
  step('enrolled; lesson open, the rest locked')

  await lessonNode.locator('a').click()
  await checkLessonPage(page, 'Printing and input', 'Printing and input')
  await page.fill('[data-testid=snippet-stdin]', 'Lyceum')
  await page.getByTestId('snippet-run').click()
  await page.getByTestId('snippet-output').getByText('hello, Lyceum').waitFor({ timeout: 120_000 })
  await shot('04-lesson-run')
  step('lesson snippet ran in the sandbox')
  await page.getByTestId('mark-read').click()
  await page.waitForURL(/\/courses\/[^/]+$/)
  await page.locator('.path .node').first().and(page.locator('[data-state=done]')).waitFor()
  await shot('05-path-after-lesson')
  step('lesson done; the path moved on')

  // The quiz: three of four right (the code question left out) is 75,
  // past the 70 the assignment needs.
  const quizNode = page.locator('.path .node').nth(1)
  if ((await quizNode.getAttribute('data-state')) !== 'open') throw new Error('the quiz is not open after the lesson')
  if ((await page.locator('.path .node').nth(2).getAttribute('data-state')) !== 'locked') throw new Error('the assignment is open before the quiz')
  await quizNode.locator('a').click()
  await page.getByTestId('quiz-start').click()
  await page.getByTestId('quiz-timer').waitFor()
  await page.locator('[data-question=q1] input[type=radio]').nth(1).check()
  await page.locator('[data-question=q2] input[type=checkbox]').nth(0).check()
  await page.locator('[data-question=q2] input[type=checkbox]').nth(2).check()
  await page.locator('[data-question=q3] input').fill('input')
  await shot('05b-quiz')
  await page.getByTestId('quiz-submit').click()
  const result = page.getByTestId('quiz-result')
  await result.waitFor()
  if ((await result.getAttribute('data-score')) !== '75') throw new Error(`quiz scored ${await result.getAttribute('data-score')}, expected 75`)
  await shot('05c-quiz-result')
  await page.getByTestId('quiz-back').click()
  await page.locator('.path .node').nth(2).and(page.locator('[data-state=open]')).waitFor()
  await shot('05d-path-unlocked')
  step('quiz scored 75; the assignment unlocked')

  // The assignment: a wrong program fails its test, a right one passes.
  await page.locator('.path .node').nth(2).locator('a').click()
  const editor = page.locator('[data-testid=editor] .cm-content')
  await editor.waitFor()
  const program = async (code) => {
    await editor.click()
    await page.keyboard.press('Control+A')
    await page.keyboard.press('Delete')
    await page.keyboard.insertText(code)
  }
  await program('n = int(input())\nprint(n + n + 1)\n')
  await page.getByTestId('run').click()
  await page.locator('[data-testid=tests] li[data-status]').first().waitFor({ timeout: 120_000 })
  if ((await page.locator('[data-testid=tests] li[data-status=accepted]').count()) !== 0) throw new Error('a wrong program passed')
  await shot('05e-assignment-failed')
  await program('n = int(input())\nprint(2 * n)\n')
  await page.getByTestId('run').click()
  await page.locator('[data-testid=tests] li[data-status=accepted]').first().waitFor({ timeout: 120_000 })
  if ((await page.locator('[data-testid=tests] li:not([data-status=accepted])').count()) !== 0) throw new Error('a right program failed a test')
  await shot('05f-assignment-passed')
  step('assignment: failed, then passed its visible test')

  // Submitting grades against the hidden tests too: a program that only
  // knows the visible case passes it and fails the hidden ones; the path
  // stays as it was. The right program is accepted and the live class opens.
  const submitAndWait = async () => {
    await page.getByTestId('submit').click()
    const graded = page.getByTestId('graded')
    await graded.waitFor({ timeout: 120_000 })
    return graded
  }
  await program('n = int(input())\nprint(42 if n == 21 else n + 1)\n')
  let graded = await submitAndWait()
  if ((await graded.getAttribute('data-status')) !== 'wrong_answer') throw new Error(`a program knowing only the visible case was ${await graded.getAttribute('data-status')}`)
  if ((await graded.locator('li[data-hidden=true]:not([data-status=accepted])').count()) < 1) throw new Error('no hidden test failed')
  if ((await graded.locator('li[data-hidden=false][data-status=accepted]').count()) !== 1) throw new Error('the visible test did not pass')
  await shot('05g-submission-failed-hidden')
  await program('n = int(input())\nprint(2 * n)\n')
  await page.getByTestId('submit').click()
  await page.locator('[data-testid=graded][data-status=accepted]').waitFor({ timeout: 120_000 })
  graded = page.getByTestId('graded')
  if ((await graded.locator('li:not([data-status=accepted])').count()) !== 0) throw new Error('an accepted submission lists a failed test')
  await shot('05h-submission-accepted')
  step('submission: hidden tests failed, then accepted')
  await page.getByTestId('assignment-back').click()
  await page.waitForURL(/\/courses\/[^/]+$/)
  await page.locator('.path .node').nth(2).and(page.locator('[data-state=done]')).waitFor()
  await page.locator('.path .node').nth(3).and(page.locator('[data-state=open]')).waitFor()
  await shot('05i-path-live-open')
  step('the accepted assignment is done on the path and the live class is open')

  // Arabic, right to left, and the phone-width layout.
  await page.selectOption('[data-testid=locale]', 'ar')
  if ((await page.getAttribute('html', 'dir')) !== 'rtl') throw new Error('Arabic did not switch the page to rtl')
  await shot('06-course-arabic-rtl')
  await page.setViewportSize({ width: 390, height: 844 })
  await shot('07-course-arabic-phone')
  await page.selectOption('[data-testid=locale]', 'en')
  await page.setViewportSize({ width: 1100, height: 800 })
  step('rtl and phone layouts captured')

  // A timetable for the warm pools: a python class in every region, from
  // 20 minutes from now for an hour, imported by the instructor (through
  // the API: this run does not drive the timetables page), so every
  // region's forecast has a series whatever ran there so far.
  const utcMinute = (ms) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ')
  const classStart = Math.ceil(Date.now() / 60_000) * 60_000 + 20 * 60_000
  const timetable = ['title,start,end,time_zone,region,languages,learners',
    ...c.edges.map((e) => `Warm pools ${e.region},${utcMinute(classStart)},${utcMinute(classStart + 3_600_000)},UTC,${e.region},python,30`)].join('\n')
  const imported = await fetch(`${c.control_plane.url}/api/v1/timetables?name=${encodeURIComponent('e2e warm pools')}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${c.tokens.instructor}`, 'content-type': 'text/csv' },
    body: `${timetable}\n`,
  })
  if (!imported.ok) throw new Error(`timetable import: ${imported.status} ${await imported.text()}`)
  const importedEvents = (await imported.json()).events?.length
  if (importedEvents !== c.edges.length) throw new Error(`the timetable imported ${importedEvents} events, not ${c.edges.length}`)
  step(`timetable: a python class in each of ${c.edges.length} regions from ${utcMinute(classStart)} UTC`)

  // The operator: the seeded operator account sees every edge's gossip
  // view (all three alive), warm pools and abuse events.
  await page.getByRole('button', { name: 'Sign out' }).click()
  await signIn(page, 'operator@dev.lyceum.test', 'lyceum-dev-operator')
  await page.getByRole('link', { name: 'Fleet' }).click()
  await page.waitForURL('**/operator')
  await page.locator('[data-edge]').nth(2).waitFor()
  for (let i = 0; i < 3; i++) {
    await page.locator('[data-edge]').nth(i).locator('[data-testid=members] tr[data-state=alive]').nth(2).waitFor()
    await page.locator('[data-edge]').nth(i).locator('[data-testid=pools] tbody tr').first().waitFor()
  }
  // A python run on each edge while the page refreshes: the run-latency
  // chart gets a point per edge and each edge's python row counts a start
  // (hot from the warm pool, or cold). Request latency is charted anyway
  // (the page's own requests are requests).
  // Two rounds, so each line has more than one point in the screenshot.
  const pythonRun = async (e) => {
    const res = await fetch(`${e.url}/api/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${c.tokens.operator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ language: 'python', files: [{ name: 'main.py', content: 'print(6 * 7)' }] }),
    })
    if (!res.ok) throw new Error(`run on ${e.region}: ${res.status} ${await res.text()}`)
  }
  const charted = (runs) => page.waitForFunction(([edges, runs]) => {
    const points = (id) => Number(document.querySelector(`[data-testid=${id}]`)?.dataset.points)
    const started = [...document.querySelectorAll('[data-edge] [data-testid=pools] tr[data-language=python]')]
      .filter((tr) => Number(tr.dataset.hot) + Number(tr.dataset.cold) > 0)
    return points('chart-http') >= 4 * edges && points('chart-run') >= runs * edges && started.length === edges
  }, [c.edges.length, runs], { timeout: 60_000 })
  for (const round of [1, 2]) {
    await Promise.all(c.edges.map(pythonRun))
    await charted(round)
  }
  // Warm pools and forecast: every edge's python pool names who set its
  // target, the edge's policy and budget are shown, and its region's chart
  // draws the python forecast (the timetable above). Which source wins and
  // how many runs there were depends on timing, so only that they are
  // there is checked.
  await page.waitForFunction((edges) => {
    const cards = [...document.querySelectorAll('[data-edge]')]
    const sources = ['operator', 'plan', 'observed', 'base']
    return cards.length === edges && cards.every((card) => {
      const row = card.querySelector('[data-testid=pools] tr[data-language=python]')
      const chart = card.querySelector('[data-testid=pool-chart]')
      return sources.includes(row?.dataset.source) && card.querySelector('[data-testid=pool-policy]')
        && chart?.querySelector('option[value=python]') && Number(chart.dataset.points) > 0 && chart.querySelector('canvas')
    })
  }, c.edges.length, { timeout: 60_000 })
  await shot('08-operator-fleet')
  // Each edge's live-audio figures are there (no class has audio yet).
  for (let i = 0; i < 3; i++) {
    await page.locator('[data-edge]').nth(i).locator('[data-testid=audio-metrics][data-present=true] [data-testid=audio-peers]').waitFor()
  }
  step('operator fleet: three edges, each sees three alive; pools with hot/cold starts and who set each target; the forecast charted per region; request and run latency charted per edge')
  await page.getByRole('link', { name: 'Tenants' }).click()
  await page.waitForURL('**/operator/tenants')
  // The dev tenant: the three dev accounts and Ada, who joined it at sign-up.
  await page.locator('[data-testid=tenants] tr[data-slug=dev]', { hasText: 'Lyceum dev' }).getByText('4', { exact: true }).waitFor()
  await shot('08b-operator-tenants')
  step('operator tenants: the dev tenant listed with its four members')
  // The chaos console: the edge names the supervisor's console, which lists
  // the repository's catalogue (every drill, runnable here or not). No drill
  // has run on this fresh cluster, and none is started here.
  await page.getByRole('link', { name: 'Chaos drills' }).click()
  await page.waitForURL('**/operator/chaos')
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=chaos-drills] [data-drill]').length >= 8, null, { timeout: 60_000 })
  await page.locator('[data-testid=chaos-drills] [data-drill=edge-paused] [data-testid=chaos-start]').waitFor()
  await page.locator('[data-testid=chaos-live][data-state=idle]').waitFor()
  // A read that failed while the supervisor fetched the control plane's keys is asked again with the next poll (5 s).
  await page.getByTestId('chaos-error').waitFor({ state: 'detached', timeout: 15_000 })
  await shot('08c-operator-chaos')
  step('operator chaos: the catalogue of chaos/drills listed, no drill running')

  // The instructor: the class dashboard shows the learner above (the quiz
  // at 75, the lesson finished) with a chart of completion per unit.
  await page.getByRole('button', { name: 'Sign out' }).click()
  await signIn(page, 'instructor@dev.lyceum.test', 'lyceum-dev-instructor')
  await page.getByRole('link', { name: 'Class dashboard' }).click()
  await page.waitForURL('**/instructor/dashboard')
  const quizRow = page.locator('[data-testid=dashboard-units] tr[data-kind=quiz]')
  await quizRow.getByText('75').waitFor()
  await page.locator('canvas').waitFor()
  await shot('09-instructor-dashboard')
  step('instructor dashboard: the quiz average is 75, completion charted')
  await buildCourse(page, base, shot)
  step('course builder: a course with all four unit kinds built and published, the assignment after its reference solution passed')

  // The instructor's live console: join the demo course's live class on the
  // nearest edge, broadcast, and drop an assignment into the class.
  const api = async (path) => {
    const res = await fetch(`${c.control_plane.url}${path}`, { headers: { authorization: `Bearer ${c.tokens.instructor}` } })
    if (!res.ok) throw new Error(`${path}: ${res.status}`)
    return res.json()
  }
  const demo = (await api('/api/v1/courses')).items[0]
  const liveModule = (await api(`/api/v1/courses/${demo.id}/modules`)).items[0]
  const classUnit = (await api(`/api/v1/modules/${liveModule.id}/units`)).items.find((u) => u.kind === 'live_classroom')
  // The instructor stays on the first edge's region (pinned), so the
  // failover at the end takes only Ada's edge away.
  // (The page comes from the public catalogue, outside the app: open the
  // class once so the app measures the regions, pin, and open it again.)
  const instructorEdge = c.edges[0]
  await page.goto(`${base}/live/${classUnit.id}`)
  await page.getByTestId('region-pick').locator(`option[value="${instructorEdge.region}"]`).waitFor({ state: 'attached' })
  await page.getByTestId('region-pick').selectOption(instructorEdge.region)
  await page.getByTestId('region').getByText(`region ${instructorEdge.region} (`).waitFor()
  await page.goto(`${base}/live/${classUnit.id}`)
  await page.locator('[data-testid=live-status][data-connected=true]', { hasText: `region ${instructorEdge.region} ` }).waitFor()
  await page.getByTestId('console').waitFor()
  await page.locator('[data-testid=roster] li').first().waitFor()
  await page.fill('[data-testid=broadcast-input]', 'hello, class')
  await page.getByTestId('broadcast-input').press('Enter')
  await page.locator('[data-testid=feed] li[data-type=broadcast]', { hasText: 'hello, class' }).waitFor()

  // Two learners, each in her own browser, pin two different regions with
  // the region picker (the dev edges all answer within a millisecond here,
  // so RTT alone would put both on one) and join the class there: Ada on
  // the second edge's region, the dev learner on the third's. The
  // instructor drops an assignment; both get it, both submit, and both
  // accepted submissions reach the instructor's feed, each naming the
  // region that ran it.
  // Classmates appear by the names they chose to show, never by e-mail.
  const joinFrom = async (browserCtx, edge, email, password, label, name) => {
    const p = await browserCtx.newPage()
    p.setDefaultTimeout(60_000)
    p.on('pageerror', (e) => console.error(`e2e: ${label} page error: ${e.message}`))
    await p.goto(`${edge.url}/sign-in`)
    await signIn(p, email, password)
    await p.getByTestId('region-pick').locator(`option[value="${edge.region}"]`).waitFor({ state: 'attached' })
    await p.getByTestId('region-pick').selectOption(edge.region)
    await p.getByTestId('region').getByText(`region ${edge.region} (`).waitFor()
    await p.goto(`${edge.url}/live/${classUnit.id}`)
    await p.getByTestId('region').getByText(`region ${edge.region} (`).waitFor()
    await p.locator('[data-testid=live-status][data-connected=true]', { hasText: `region ${edge.region} ` }).waitFor()
    await page.locator('[data-testid=roster] li', { hasText: name }).waitFor()
    return p
  }
  // Live audio, as the page's own stats show it (window.__lyceumMedia).
  const onSlot = (p, role) => p.waitForFunction((r) => {
    const v = window.__lyceumMedia?.view()
    return Object.values(v?.peers ?? {}).find((peer) => peer.role === r && peer.slot !== null)?.peer
  }, role, { timeout: 60_000 }).then((h) => h.jsonValue())
  const inbound = async (p, from) => {
    const s = await p.evaluate(() => window.__lyceumMedia.stats())
    const slot = s.slots.find((x) => x.peer === from)
    return { packets: slot?.packetsReceived ?? 0, energy: slot?.totalAudioEnergy ?? 0 }
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
  // Heard: over two seconds, at least 60 packets (the 20 ms Opus frame
  // rate is 100) and more energy. Returns packets per second.
  const heard = async (p, from, what) => {
    for (let i = 0; i < 30; i++) {
      const a = await inbound(p, from)
      await sleep(2000)
      const b = await inbound(p, from)
      if (b.packets - a.packets >= 60 && b.energy > a.energy) return (b.packets - a.packets) / 2
    }
    throw new Error(`${what}: no audio arrived (${JSON.stringify(await p.evaluate(() => window.__lyceumMedia.stats()))})`)
  }
  // Silent: after a moment for packets in flight, fewer than 10 in two seconds.
  const silent = async (p, from, what) => {
    for (let i = 0; i < 15; i++) {
      await sleep(1000)
      const a = await inbound(p, from)
      await sleep(2000)
      const b = await inbound(p, from)
      if (b.packets - a.packets < 10) return
    }
    throw new Error(`${what}: audio kept arriving`)
  }
  const [adaEdge, devEdge] = [c.edges[1], c.edges[2]]
  if (adaEdge.region === devEdge.region) throw new Error(`the dev cluster's edges 1 and 2 share region ${adaEdge.region}`)
  learner = await launch()
  const lpage = await joinFrom(learner, adaEdge, adaEmail, 'correct-horse-battery', 'learner', 'Ada')
  const other = await launch()
  try {
    const opage = await joinFrom(other, devEdge, 'learner@dev.lyceum.test', 'lyceum-dev-learner', 'second learner', 'Dev learner')
    // No page of a learner shows another person's e-mail address.
    for (const [who, p, others] of [['Ada', lpage, ['learner@dev.lyceum.test', 'instructor@dev.lyceum.test']], ['the dev learner', opage, [adaEmail, 'instructor@dev.lyceum.test']]]) {
      const text = await p.locator('body').innerText()
      for (const email of others) if (text.includes(email)) throw new Error(`${who}'s page shows ${email}`)
    }
    await page.fill('[data-testid=drop-form] input[name=title]', 'Sum two numbers')
    await page.fill('[data-testid=drop-form] input[name=stdin]', '2 3')
    await page.fill('[data-testid=drop-form] input[name=expected]', '5')
    await page.locator('[data-testid=drop-form] button[type=submit]').click()
    await page.locator('[data-testid=feed] li[data-type=assignment]', { hasText: 'Sum two numbers' }).waitFor()
    for (const p of [lpage, opage]) {
      const task = p.locator('[data-testid=live-assignment]', { hasText: 'Sum two numbers' })
      await task.waitFor()
      await task.locator('textarea').fill('a, b = map(int, input().split())\nprint(a + b)\n')
      await task.locator('button').click()
    }
    for (const edge of [adaEdge, devEdge]) {
      await page.locator('[data-testid=feed] li[data-type=submission]', { hasText: `accepted, 1 of 1 tests (${edge.region})` }).waitFor({ timeout: 120_000 })
    }
    // The console's grid has a row per learner and the dropped assignment's
    // column: both cells accepted, each from its learner's region.
    for (const edge of [adaEdge, devEdge]) {
      await page.locator(`[data-testid=submission-grid] td[data-verdict=accepted][data-region="${edge.region}"]`).waitFor()
    }
    await shot('10-instructor-live-console')
    await lpage.screenshot({ path: join(artifacts, '11-learner-live-class.png'), fullPage: true })
    step(`live class: two learners on two regions (${adaEdge.region}, ${devEdge.region}) got the dropped assignment and both accepted submissions reached the instructor`)

    // Breakout rooms: the instructor plans two rooms (round-robin), moves
    // Ada into Room 2 by hand and opens them. Each learner's page shows her
    // own room and its members; the instructor's message to a room and a
    // learner's chat stay in that room (the instructor sees the chat tagged
    // with it, the other room never sees it); then the instructor brings
    // everyone back.
    await page.fill('[data-testid=breakout-plan] input[name=rooms]', '2')
    await page.locator('[data-testid=breakout-plan] button[type=submit]').click()
    await page.locator('[data-testid=breakout-draft] tbody tr').nth(1).waitFor()
    await page.locator('[data-testid=breakout-draft] tr', { hasText: 'Ada' }).locator('select').selectOption('Room 2')
    await page.locator('[data-testid=breakout-draft] tr', { hasText: 'Dev learner' }).locator('select').selectOption('Room 1')
    await page.getByTestId('breakout-start').click()
    const roomOne = page.locator('[data-testid=breakout-rooms] li[data-room="Room 1"]', { hasText: 'Dev learner' })
    await roomOne.waitFor()
    await page.locator('[data-testid=breakout-rooms] li[data-room="Room 2"]', { hasText: 'Ada' }).waitFor()
    const adaRoom = lpage.locator('[data-testid=my-room][data-room="Room 2"]')
    const devRoom = opage.locator('[data-testid=my-room][data-room="Room 1"]')
    await adaRoom.locator('[data-testid=my-room-members] li', { hasText: 'Ada' }).waitFor()
    await devRoom.locator('[data-testid=my-room-members] li', { hasText: 'Dev learner' }).waitFor()
    await roomOne.locator('input').fill('five minutes, then we compare')
    await roomOne.locator('input').press('Enter')
    await devRoom.locator('[data-testid=room-feed] li[data-type=breakout_message]', { hasText: 'five minutes' }).waitFor()
    await lpage.fill('[data-testid=chat-input]', 'we are on it')
    await lpage.getByTestId('chat-input').press('Enter')
    await adaRoom.locator('[data-testid=room-feed] li[data-type=chat]', { hasText: 'we are on it' }).waitFor()
    await page.locator('[data-testid=feed] li[data-type=chat]', { hasText: 'we are on it' }).locator('[data-testid=chat-room]', { hasText: 'Room 2' }).waitFor()
    // Events reach each page in the class's order: Room 1's own chat comes
    // after Ada's, so once Room 1 shows it Ada's would be there too had it
    // been sent there; Ada has seen her chat, which came after the message
    // to Room 1.
    await opage.fill('[data-testid=chat-input]', 'room one here')
    await opage.getByTestId('chat-input').press('Enter')
    await page.locator('[data-testid=feed] li[data-type=chat]', { hasText: 'room one here' }).waitFor()
    await devRoom.locator('[data-testid=room-feed] li', { hasText: 'room one here' }).waitFor()
    if (await opage.getByText('we are on it').count()) throw new Error("Room 2's chat reached Room 1")
    if (await lpage.getByText('five minutes').count()) throw new Error("Room 1's message reached Room 2")
    await shot('16-instructor-breakout')
    await lpage.screenshot({ path: join(artifacts, '17-learner-breakout.png'), fullPage: true })
    await page.getByTestId('breakout-end').click()
    for (const p of [lpage, opage]) await p.locator('[data-testid=feed] li[data-type=breakout_ended]').waitFor()
    await adaRoom.waitFor({ state: 'detached' })
    await devRoom.waitFor({ state: 'detached' })
    await page.locator('[data-testid=breakout-console][data-split=false]').waitFor()
    step('breakout: two learners split into two rooms (one moved by hand); each saw her own room, its members and its chat only; the instructor ended it')

    // Live audio across regions: the instructor is on the first edge, the
    // dev learner on the third, so every packet between them is relayed
    // edge to edge. Both join the audio; the learner hears the instructor
    // (inbound-rtp packets at about the Opus frame rate, energy growing);
    // she may not publish until the instructor allows her, then the
    // instructor hears her; the instructor's mute stops her audio at her
    // edge; the instructor muting herself stops hers.
    const allowButton = page.locator('[data-testid=roster] li', { hasText: 'Dev learner' }).locator('[data-testid^=allow-]')
    const learnerId = (await allowButton.getAttribute('data-testid')).slice('allow-'.length)
    await page.getByTestId('audio-join').click()
    await opage.getByTestId('audio-join').click()
    const instructorId = await onSlot(opage, 'instructor')
    const rate = await heard(opage, instructorId, 'the learner hears the instructor')
    if (await opage.evaluate(() => window.__lyceumMedia.view().publishing)) throw new Error('a learner not allowed is publishing')
    if (!(await opage.getByTestId('mic-toggle').isDisabled())) throw new Error("the learner's microphone switch is enabled before she may speak")
    await allowButton.click()
    await opage.waitForFunction(() => window.__lyceumMedia.view().publishing, null, { timeout: 60_000 })
    await onSlot(page, 'learner')
    await heard(page, learnerId, 'the instructor hears the learner she allowed')
    await shot('19-instructor-audio')
    await opage.screenshot({ path: join(artifacts, '20-learner-audio.png'), fullPage: true })
    await page.locator(`[data-testid=mute-${learnerId}]`).click()
    await silent(page, learnerId, "the instructor's mute")
    await opage.locator('[data-testid=mic-why][data-why=server_muted]').waitFor()
    await page.getByTestId('mic-toggle').click()
    await silent(opage, instructorId, 'the instructor muting herself')
    await page.getByTestId('mic-toggle').click()
    await heard(opage, instructorId, 'the instructor unmuting herself')
    // Ada, on a third region, joins the audio too (her edge is killed below).
    await lpage.getByTestId('audio-join').click()
    await heard(lpage, instructorId, 'Ada hears the instructor')
    // Breakout rooms carry their own audio: the instructor lifts the dev
    // learner's mute, and Ada (a third region) hears her; split into two
    // rooms (Ada in Room 2, the dev learner in Room 1), Ada and the
    // instructor no longer do; back in the main room, Ada hears her again.
    await page.locator(`[data-testid=mute-${learnerId}]`).click()
    await heard(lpage, learnerId, 'Ada hears the dev learner')
    await page.fill('[data-testid=breakout-plan] input[name=rooms]', '2')
    await page.locator('[data-testid=breakout-plan] button[type=submit]').click()
    await page.locator('[data-testid=breakout-draft] tbody tr').nth(1).waitFor()
    await page.locator('[data-testid=breakout-draft] tr', { hasText: 'Ada' }).locator('select').selectOption('Room 2')
    await page.locator('[data-testid=breakout-draft] tr', { hasText: 'Dev learner' }).locator('select').selectOption('Room 1')
    await page.getByTestId('breakout-start').click()
    await lpage.locator('[data-testid=my-room][data-room="Room 2"]').waitFor()
    await silent(lpage, learnerId, "Room 1's audio in Room 2")
    await silent(page, learnerId, "Room 1's audio in the main room")
    await page.getByTestId('breakout-end').click()
    await page.locator('[data-testid=breakout-console][data-split=false]').waitFor()
    await heard(lpage, learnerId, 'Ada hears the dev learner back in the main room')
    step(`live audio across regions (${instructorEdge.region} to ${devEdge.region}): the learner heard the instructor (${rate} packets/s); allowed, she was heard; muted by the instructor, she was not; the instructor's own mute silenced her; breakout rooms kept their audio apart`)
  } finally {
    await other.close().catch(() => {})
  }

  // Failover: Ada's edge dies (SIGKILL; its region has no other edge). Her
  // page finds the regions through the edges it ranked before (the page's
  // own origin is the dead edge), rejoins the class on the nearest other
  // region with the last seq it saw, and the broadcast the instructor sent
  // while she was away reaches her, once; nothing she had is lost or
  // doubled (every feed line: chat, broadcasts, the assignment, her
  // submission, the breakout, whether the new edge replays the events she
  // missed or sends a snapshot).
  const adaStatus = lpage.locator('[data-testid=live-status]')
  const adaLines = () => lpage.locator('[data-testid=feed] li').allTextContents()
  const before = await adaLines()
  if (!before.some((l) => l.includes('hello, class'))) throw new Error(`Ada's feed lacks the first broadcast: ${before}`)
  process.kill(adaEdge.pid, 'SIGKILL')
  await page.fill('[data-testid=broadcast-input]', 'still with us?')
  await page.getByTestId('broadcast-input').press('Enter')
  await page.locator('[data-testid=feed] li[data-type=broadcast]', { hasText: 'still with us?' }).waitFor()
  await adaStatus.and(lpage.locator('[data-connected=true]')).filter({ hasNotText: `region ${adaEdge.region} ` }).waitFor({ timeout: 90_000 })
  const adaFeed = lpage.locator('[data-testid=feed] li[data-type=broadcast]')
  await adaFeed.filter({ hasText: 'still with us?' }).waitFor()
  const after = await adaLines()
  const expected = [...before, after.at(-1)]
  if (JSON.stringify(after) !== JSON.stringify(expected) || !after.at(-1).includes('still with us?')) {
    throw new Error(`after failover Ada's feed is ${JSON.stringify(after)}, expected ${JSON.stringify(before)} then the missed broadcast`)
  }
  await lpage.getByTestId('region').filter({ hasNotText: `region ${adaEdge.region} ` }).waitFor()
  // Her audio came back on the new edge without a reload: a fresh peer
  // connection from the new edge's media_config.
  const instructorVoice = await onSlot(lpage, 'instructor')
  await heard(lpage, instructorVoice, "Ada's audio after her edge died")
  // Her pin stays, shown as unreachable, so she sees why she is elsewhere.
  await lpage.getByTestId('region-pick').locator(`option[value="${adaEdge.region}"]`, { hasText: 'unreachable' }).waitFor({ state: 'attached' })
  if ((await lpage.getByTestId('region-pick').inputValue()) !== adaEdge.region) throw new Error('the region picker lost the pinned region')
  await lpage.screenshot({ path: join(artifacts, '18-learner-after-failover.png'), fullPage: true })
  step(`failover: ${adaEdge.region} killed; Ada resumed the class on ${(await adaStatus.textContent())?.trim()}, with the broadcast she missed, once, and her audio back without a reload`)
}

main()
  .then(() => { step('passed'); return 0 })
  .catch(async (e) => {
    console.error(`e2e: FAILED: ${e.stack ?? e}`)
    await current?.screenshot({ path: join(artifacts, 'failure.png'), fullPage: true }).catch(() => {})
    return 1
  })
  .then(async (code) => {
    await browser?.close().catch(() => {})
    await learner?.close().catch(() => {})
    cluster.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 3000))
    rmSync(dataDir, { recursive: true, force: true })
    process.exit(code)
  })
