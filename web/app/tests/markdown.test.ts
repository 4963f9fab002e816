// @vitest-environment jsdom
// DOMPurify needs a DOM; jsdom parses HTML the way browsers do, so what
// these tests see is what a learner's browser would build.
import { describe, expect, it } from 'vitest'
import { defaultHighlightStyle } from '@codemirror/language'
import { tags } from '@lezer/highlight'
import { fenceLanguage, renderMarkdown } from '../src/markdown'

/** The rendered lesson as a DOM, the way Lesson.vue's v-html builds it. */
function dom(source: string): HTMLElement {
  const div = document.createElement('div')
  div.innerHTML = renderMarkdown(source)
  return div
}

/** Nothing in `root` can run script or leave the allowed URL schemes. */
function expectInert(root: HTMLElement) {
  for (const tag of ['script', 'iframe', 'object', 'embed', 'form', 'style', 'svg', 'math', 'link', 'meta', 'base', 'input', 'button', 'textarea']) {
    expect(root.querySelector(tag), `<${tag}> survived`).toBeNull()
  }
  for (const el of Array.from(root.querySelectorAll('*'))) {
    for (const attr of Array.from(el.attributes)) {
      expect(attr.name.startsWith('on'), `${el.tagName} kept ${attr.name}`).toBe(false)
      expect(attr.name, `${el.tagName} kept style`).not.toBe('style')
      if (['href', 'src', 'xlink:href', 'action', 'formaction'].includes(attr.name)) {
        expect(attr.value, `${el.tagName} ${attr.name}=${attr.value}`).toMatch(/^(https?:|mailto:)/i)
      }
    }
  }
  for (const a of Array.from(root.querySelectorAll('a'))) expect(a.getAttribute('rel')).toBe('noopener noreferrer')
}

describe('lesson Markdown', () => {
  it('renders headings below the page title, emphasis, inline code and lists', () => {
    const root = dom('# Loops\n\n## Why\n\nA **bold** and *quiet* word, with `for x in xs`.\n\n- one\n- two\n\n1. first\n2. second\n')
    expect(root.querySelector('h2')?.textContent).toBe('Loops')
    expect(root.querySelector('h3')?.textContent).toBe('Why')
    expect(root.querySelector('h1')).toBeNull()
    expect(root.querySelector('p strong')?.textContent).toBe('bold')
    expect(root.querySelector('p em')?.textContent).toBe('quiet')
    expect(root.querySelector('p code')?.textContent).toBe('for x in xs')
    expect(Array.from(root.querySelectorAll('ul > li')).map((li) => li.textContent)).toEqual(['one', 'two'])
    expect(Array.from(root.querySelectorAll('ol > li')).map((li) => li.textContent)).toEqual(['first', 'second'])
    expect(root.textContent).not.toMatch(/[#*`]/)
  })

  it('keeps http(s) and mailto links, with rel="noopener noreferrer"', () => {
    const root = dom('[docs](https://docs.python.org/3/) and [mail](mailto:a@b.c) and https://example.org')
    const links = Array.from(root.querySelectorAll('a'))
    expect(links.map((a) => a.getAttribute('href'))).toEqual(['https://docs.python.org/3/', 'mailto:a@b.c', 'https://example.org'])
    for (const a of links) expect(a.getAttribute('rel')).toBe('noopener noreferrer')
  })

  it('highlights a fenced block with the editor\'s highlight style, left to right', () => {
    const root = dom('```python\ndef greet(name):\n    return "hi " + name  # say it\n```\n')
    const pre = root.querySelector('pre')!
    expect(pre.getAttribute('dir')).toBe('ltr')
    expect(pre.querySelector('code')?.classList.contains('language-python')).toBe(true)
    expect(pre.textContent).toBe('def greet(name):\n    return "hi " + name  # say it\n')
    const spans = Array.from(pre.querySelectorAll('span'))
    expect(spans.length).toBeGreaterThan(2)
    const keyword = defaultHighlightStyle.style([tags.keyword])!
    const string = defaultHighlightStyle.style([tags.string])!
    const comment = defaultHighlightStyle.style([tags.lineComment])!
    expect(spans.find((s) => s.textContent === 'def')?.className).toBe(keyword)
    expect(spans.find((s) => s.textContent === '"hi "')?.className).toBe(string)
    expect(spans.find((s) => s.textContent === '# say it')?.className).toBe(comment)
    // The same colours as the editor: its style sheet is on the page.
    const css = Array.from(document.adoptedStyleSheets ?? []).flatMap((s) => Array.from(s.cssRules).map((r) => r.cssText)).join('\n')
      + Array.from(document.querySelectorAll('style')).map((s) => s.textContent).join('\n')
    expect(css).toContain(`.${keyword}`)
  })

  it('highlights every sandbox language by name or alias, and leaves unknown ones plain', () => {
    for (const [info, name] of [['py', 'python'], ['js', 'javascript'], ['rb', 'ruby'], ['sh', 'bash'], ['sql', 'sql'], ['c++', 'cpp'], ['rust', 'rust']]) {
      expect(fenceLanguage(info)).toBe(name)
    }
    expect(dom('```ruby\ndef f; end\n```').querySelectorAll('pre span').length).toBeGreaterThan(0)
    expect(dom('```bash\necho "hi" # x\n```').querySelectorAll('pre span').length).toBeGreaterThan(0)
    const plain = dom('```brainfuck\n+++<script>x</script>\n```').querySelector('pre')!
    expect(plain.querySelectorAll('span').length).toBe(0)
    expect(plain.textContent).toBe('+++<script>x</script>\n')
    expect(plain.querySelector('script')).toBeNull()
  })

  const attacks: [string, string][] = [
    ['script element', '<script>alert(1)</script>'],
    ['img onerror', '<img src=x onerror=alert(1)>'],
    ['javascript: link', '[x](javascript:alert(1))'],
    ['javascript: link, disguised', '[x](JaVaScRiPt&#58;alert(1)) [y](java\nscript:alert(1)) [z]( javascript:alert(1))'],
    ['data: link', '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)'],
    ['data: image', '![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)'],
    ['iframe', '<iframe src="https://evil.example"></iframe>'],
    ['anchor with onclick', '<a href="https://x" onclick="alert(1)">x</a>'],
    ['svg onload', '<svg onload="alert(1)"><circle r="1"/></svg>'],
    ['comment hiding script', '<!-- --><script>alert(1)</script><!-- -->\n\n<!--<script>alert(1)</script>-->'],
    ['style block', '<style>body { display: none }</style>'],
    ['form', '<form action="https://evil.example"><button formaction="javascript:alert(1)">go</button></form>'],
    ['reference link to javascript:', '[x][1]\n\n[1]: javascript:alert(1)'],
    ['autolink to javascript:', '<javascript:alert(1)>'],
    ['script in a code block', '```python\n</code></pre><script>alert(1)</script>\n```'],
    ['script in a fence info', '```"><script>alert(1)</script>\nx\n```'],
    ['script in inline code', '`<script>alert(1)</script>`'],
    ['link title breaking out', '[x](https://x "a\\" onmouseover=\\"alert(1))'],
  ]
  for (const [name, source] of attacks) {
    it(`leaves an author's ${name} inert`, () => {
      const root = dom(source)
      expectInert(root)
      // Raw HTML from the author is shown as text, never as markup.
      if (source.startsWith('<') && !source.startsWith('<javascript')) expect(root.textContent).toContain(source.split('\n')[0].slice(0, 8))
    })
  }
})
