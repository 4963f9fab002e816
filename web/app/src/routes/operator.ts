// The operator surface's pages (nodes, pools, latency, abuse, tenants).
// Same `meta` conventions as learner.ts.
import type { RouteRecordRaw } from 'vue-router'
import Fleet from '../views/Fleet.vue'
import Tenants from '../views/Tenants.vue'

export const operatorRoutes: RouteRecordRaw[] = [
  { path: '/operator', component: Fleet, meta: { nav: 'nav.fleet', roles: ['operator'] } },
  { path: '/operator/tenants', component: Tenants, meta: { nav: 'nav.tenants', roles: ['operator'] } },
]
