// CodeMirror 6 with highlighting for every sandbox language.
import { EditorView, basicSetup } from 'codemirror'
import { EditorState } from '@codemirror/state'
import { Language, LanguageSupport, StreamLanguage } from '@codemirror/language'
import { python } from '@codemirror/lang-python'
import { javascript } from '@codemirror/lang-javascript'
import { cpp } from '@codemirror/lang-cpp'
import { java } from '@codemirror/lang-java'
import { go } from '@codemirror/lang-go'
import { rust } from '@codemirror/lang-rust'
import { sql } from '@codemirror/lang-sql'
import { ruby } from '@codemirror/legacy-modes/mode/ruby'
import { shell } from '@codemirror/legacy-modes/mode/shell'

/** The ten sandbox languages and their CodeMirror support. */
export const LANGUAGES: Record<string, () => LanguageSupport | Language> = {
  python: () => python(),
  javascript: () => javascript(),
  c: () => cpp(),
  cpp: () => cpp(),
  java: () => java(),
  go: () => go(),
  rust: () => rust(),
  ruby: () => StreamLanguage.define(ruby),
  bash: () => StreamLanguage.define(shell),
  sql: () => sql(),
}

const parsers = new Map<string, Language>()

/**
 * The CodeMirror language (and so the parser) the editor uses for a sandbox
 * language, or undefined for one it does not know. The lesson page's code
 * blocks (markdown.ts) highlight with it, so they look like the editor.
 */
export function languageFor(name: string): Language | undefined {
  const make = LANGUAGES[name]
  if (!make) return undefined
  let language = parsers.get(name)
  if (!language) {
    const made = make()
    language = made instanceof LanguageSupport ? made.language : made
    parsers.set(name, language)
  }
  return language
}

export function createEditor(parent: HTMLElement, doc: string, language: string, label: string, onChange: (v: string) => void): EditorView {
  const lang = LANGUAGES[language] ?? LANGUAGES.python
  return new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        basicSetup,
        lang(),
        EditorView.contentAttributes.of({ 'aria-label': label }),
        EditorView.updateListener.of((u) => { if (u.docChanged) onChange(u.state.doc.toString()) }),
      ],
    }),
  })
}
