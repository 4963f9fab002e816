// The instructor surface's pages (course, quiz and assignment builders, live
// console, class dashboard). Same `meta` conventions as learner.ts.
import type { RouteRecordRaw } from 'vue-router'

export const instructorRoutes: RouteRecordRaw[] = []
