// The operator surface's pages (nodes, pools, latency, abuse, tenants).
// Same `meta` conventions as learner.ts.
import type { RouteRecordRaw } from 'vue-router'

export const operatorRoutes: RouteRecordRaw[] = []
