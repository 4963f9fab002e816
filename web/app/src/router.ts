// One router for the three surfaces; each surface owns its routes file.
import { createRouter, createWebHistory } from 'vue-router'
import { session, sessionRole } from './api'
import { learnerRoutes } from './routes/learner'
import { instructorRoutes } from './routes/instructor'
import { operatorRoutes } from './routes/operator'

export const router = createRouter({
  history: createWebHistory(),
  routes: [...learnerRoutes, ...instructorRoutes, ...operatorRoutes],
})

router.beforeEach((to) => {
  if (!to.meta.public && !session.token) return { path: '/sign-in', query: { next: to.fullPath } }
  const roles = to.meta.roles as string[] | undefined
  if (roles && !roles.includes(sessionRole() ?? '')) return { path: '/courses' }
})
