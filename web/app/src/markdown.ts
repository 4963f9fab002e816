// A lesson's Markdown as sanitised HTML, with fenced code highlighted the
// way the code editor highlights it.
//
// Two guards, so that no script an author writes reaches a learner's page:
//  1. markdown-it with `html: false`: raw HTML in the source is escaped and
//     shown as text, never passed through; its link check already refuses
//     javascript:, vbscript:, file: and most data: URLs.
//  2. DOMPurify on markdown-it's output, with a short allow-list of the
//     elements and attributes Markdown produces and only http(s)/mailto
//     URLs; every link gets rel="noopener noreferrer".
// Without a DOM (DOMPurify cannot run) it fails closed: the source is shown
// as escaped text.
import MarkdownIt from 'markdown-it'
import DOMPurify, { type DOMPurify as Purifier } from 'dompurify'
import { highlightCode } from '@lezer/highlight'
import { defaultHighlightStyle } from '@codemirror/language'
import { StyleModule } from 'style-mod'
import { LANGUAGES, languageFor } from './editor'

/** Names authors write after ``` for the sandbox languages. */
const ALIASES: Record<string, string> = {
  py: 'python', python3: 'python', js: 'javascript', node: 'javascript', mjs: 'javascript',
  h: 'c', 'c++': 'cpp', cc: 'cpp', cxx: 'cpp', hpp: 'cpp', golang: 'go', rs: 'rust',
  rb: 'ruby', sh: 'bash', shell: 'bash', zsh: 'bash', postgres: 'sql', postgresql: 'sql',
}

/** The sandbox language a fence's info string names, or undefined. */
export function fenceLanguage(info: string): string | undefined {
  const word = info.trim().split(/\s+/)[0]?.toLowerCase() ?? ''
  const name = ALIASES[word] ?? word
  return name in LANGUAGES ? name : undefined
}

const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')

/**
 * A code block as HTML: the editor's parser for the language and the
 * editor's highlight style (CodeMirror's default, the one basicSetup uses),
 * so the spans carry the very classes, and colours, the editor shows.
 * Always left to right, even on an Arabic page.
 */
export function highlightBlock(code: string, info: string): string {
  const name = fenceLanguage(info)
  const language = name ? languageFor(name) : undefined
  let html = ''
  if (language) {
    highlightCode(code, language.parser.parse(code), defaultHighlightStyle,
      (text, classes) => { html += classes ? `<span class="${escapeHtml(classes)}">${escapeHtml(text)}</span>` : escapeHtml(text) },
      () => { html += '\n' })
  } else {
    html = escapeHtml(code)
  }
  const cls = name ? ` class="language-${name}"` : ''
  return `<pre class="code" dir="ltr"><code${cls}>${html}</code></pre>\n`
}

const md = new MarkdownIt({ html: false, linkify: true, typographer: false })
md.set({ highlight: (code, info) => highlightBlock(code, info) })

// The lesson's title is the page's h1: the author's headings go one level
// below it (# → h2 … ##### → h6; ###### stays h6).
md.renderer.rules.heading_open = (tokens, i, options, _env, self) => {
  const level = Math.min(6, Number(tokens[i].tag.slice(1)) + 1)
  tokens[i].tag = `h${level}`
  return self.renderToken(tokens, i, options)
}
md.renderer.rules.heading_close = (tokens, i, options, _env, self) => {
  const open = tokens.slice(0, i).reverse().find((t) => t.type === 'heading_open')
  if (open) tokens[i].tag = open.tag
  return self.renderToken(tokens, i, options)
}

const ALLOWED_TAGS = [
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'p', 'br', 'hr', 'blockquote',
  'em', 'strong', 's', 'code', 'pre', 'span', 'a', 'img',
  'ul', 'ol', 'li', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
]
const ALLOWED_ATTR = ['href', 'title', 'src', 'alt', 'class', 'dir', 'start']
const ALLOWED_URI = /^(?:https?:|mailto:)/i

let purifier: Purifier | null = null
function purify(): Purifier | null {
  if (purifier) return purifier
  if (typeof window === 'undefined') return null
  // Our own instance, so its hook touches no other DOMPurify user.
  const p = DOMPurify(window)
  if (!p.isSupported) return null
  p.addHook('afterSanitizeAttributes', (node) => {
    if (node.nodeName === 'A') {
      const href = node.getAttribute('href')
      if (href !== null && !ALLOWED_URI.test(href.trim())) node.removeAttribute('href')
      node.setAttribute('rel', 'noopener noreferrer')
    }
    // A code block may scroll sideways: keyboard users must reach it.
    if (node.nodeName === 'PRE') node.setAttribute('tabindex', '0')
    if (node.nodeName === 'IMG') {
      const src = node.getAttribute('src')
      if (src !== null && !/^https?:/i.test(src.trim())) node.removeAttribute('src')
    }
  })
  purifier = p
  return p
}

let stylesMounted = false
/** Puts the editor's highlight colours on the page (as the editor itself does). */
function mountCodeStyles() {
  if (stylesMounted || typeof document === 'undefined' || !defaultHighlightStyle.module) return
  StyleModule.mount(document, defaultHighlightStyle.module)
  stylesMounted = true
}

/**
 * A lesson's Markdown as HTML that is safe to put in the page with v-html:
 * nothing in it can run script, load a frame, submit a form or restyle the
 * page.
 */
export function renderMarkdown(source: string): string {
  const p = purify()
  if (!p) return `<p>${escapeHtml(source ?? '')}</p>`
  mountCodeStyles()
  return p.sanitize(md.render(source ?? ''), {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOWED_URI_REGEXP: ALLOWED_URI,
    // Checked against the URI pattern otherwise; their values are no URLs.
    ADD_URI_SAFE_ATTR: ['dir', 'start'],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_TRUSTED_TYPE: false,
  }) as string
}
