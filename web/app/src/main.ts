import { createApp } from 'vue'
import App from './App.vue'
import { router } from './router'
import { i18n, setLocale } from './i18n'
import { discoverControlPlane } from './api'
import './style.css'

setLocale(i18n.global.locale.value as any)
discoverControlPlane().finally(() => createApp(App).use(router).use(i18n).mount('#app'))
