// The instructor surface's pages (course, quiz and assignment builders, live
// console, class dashboard). Same `meta` conventions as learner.ts.
import type { RouteRecordRaw } from 'vue-router'
import Dashboard from '../views/Dashboard.vue'

export const instructorRoutes: RouteRecordRaw[] = [
  { path: '/instructor/dashboard', component: Dashboard, meta: { nav: 'nav.dashboard', roles: ['instructor', 'operator'] } },
]
