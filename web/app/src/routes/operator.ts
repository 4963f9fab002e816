// The operator surface's pages (nodes, pools, latency, abuse, tenants, chaos
// drills). Same `meta` conventions as learner.ts.
import type { RouteRecordRaw } from 'vue-router'
import Chaos from '../views/Chaos.vue'
import Fleet from '../views/Fleet.vue'
import Tenants from '../views/Tenants.vue'

export const operatorRoutes: RouteRecordRaw[] = [
  { path: '/operator', component: Fleet, meta: { nav: 'nav.fleet', roles: ['operator'] } },
  { path: '/operator/tenants', component: Tenants, meta: { nav: 'nav.tenants', roles: ['operator'] } },
  { path: '/operator/chaos', component: Chaos, meta: { nav: 'nav.chaos', roles: ['operator'] } },
]
