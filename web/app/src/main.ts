import { createApp } from 'vue'
import App from './App.vue'
import { router } from './router'
import { i18n, setLocale } from './i18n'
import './style.css'

setLocale(i18n.global.locale.value as any)
createApp(App).use(router).use(i18n).mount('#app')
