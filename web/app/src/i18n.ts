// Ten UI languages; Arabic is right-to-left. Dates and numbers go through Intl.
import { createI18n } from 'vue-i18n'

/** The ten UI languages, in the switcher's order. */
export const LOCALES = ['en', 'es', 'fr', 'de', 'pt', 'zh', 'ja', 'hi', 'ar', 'ru'] as const
export type Locale = (typeof LOCALES)[number]

// Every surface keeps its strings in its own files, so that the learner,
// instructor and operator surfaces can grow without touching each other:
// locales/<code>.json (shared and learner), locales/<area>/<code>.json.
const files = import.meta.glob('./locales/**/*.json', { eager: true, import: 'default' }) as Record<string, Record<string, unknown>>

/** Deep-merges each locale's files into one message tree. */
export function mergeLocaleFiles(found: Record<string, Record<string, unknown>>): Record<Locale, Record<string, unknown>> {
  const out = Object.fromEntries(LOCALES.map((l) => [l, {}])) as Record<Locale, Record<string, unknown>>
  for (const [path, tree] of Object.entries(found)) {
    const code = path.split('/').pop()!.replace(/\.json$/, '') as Locale
    if (!(code in out)) continue
    merge(out[code], tree)
  }
  return out
}
function merge(into: Record<string, any>, from: Record<string, any>) {
  for (const [k, v] of Object.entries(from)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) merge((into[k] ??= {}), v)
    else into[k] = v
  }
}

export const messages = mergeLocaleFiles(files)

/** Each locale's name in itself, for the switcher. */
export const LOCALE_NAMES: Record<Locale, string> = {
  en: 'English', es: 'Español', fr: 'Français', de: 'Deutsch', pt: 'Português',
  zh: '中文', ja: '日本語', hi: 'हिन्दी', ar: 'العربية', ru: 'Русский',
}
export const RTL: Locale[] = ['ar']

function initial(): Locale {
  const saved = localStorage.getItem('lyceum.locale') as Locale | null
  if (saved && saved in messages) return saved
  const nav = navigator.language.slice(0, 2) as Locale
  return nav in messages ? nav : 'en'
}

export const i18n = createI18n({ legacy: false, locale: initial(), fallbackLocale: 'en', messages: messages as Record<Locale, any> })

export function setLocale(locale: Locale) {
  i18n.global.locale.value = locale
  localStorage.setItem('lyceum.locale', locale)
  document.documentElement.lang = locale
  document.documentElement.dir = RTL.includes(locale) ? 'rtl' : 'ltr'
}

export function formatDate(ms: number, locale: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium' }).format(new Date(ms))
}
export function formatPercent(value: number, locale: string): string {
  return new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 0 }).format(value / 100)
}
export function formatNumber(value: number, locale: string): string {
  return new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(value)
}
export function formatTime(ms: number, locale: string): string {
  return new Intl.DateTimeFormat(locale, { timeStyle: 'medium' }).format(new Date(ms))
}
export function formatDateTime(ms: number, locale: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(ms))
}
