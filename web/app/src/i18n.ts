// Ten UI languages; Arabic is right-to-left. Dates and numbers go through Intl.
import { createI18n } from 'vue-i18n'
import en from './locales/en.json'
import es from './locales/es.json'
import fr from './locales/fr.json'
import de from './locales/de.json'
import pt from './locales/pt.json'
import zh from './locales/zh.json'
import ja from './locales/ja.json'
import hi from './locales/hi.json'
import ar from './locales/ar.json'
import ru from './locales/ru.json'

export const messages = { en, es, fr, de, pt, zh, ja, hi, ar, ru }
export type Locale = keyof typeof messages
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

export const i18n = createI18n({ legacy: false, locale: initial(), fallbackLocale: 'en', messages })

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
