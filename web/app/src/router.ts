import { createRouter, createWebHistory } from 'vue-router'
import { session } from './api'
import SignIn from './views/SignIn.vue'
import Catalogue from './views/Catalogue.vue'
import Course from './views/Course.vue'
import Lesson from './views/Lesson.vue'
import Assignment from './views/Assignment.vue'
import Progress from './views/Progress.vue'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: '/courses' },
    { path: '/sign-in', component: SignIn, meta: { public: true } },
    { path: '/sign-up', component: SignIn, meta: { public: true, signUp: true } },
    { path: '/courses', component: Catalogue },
    { path: '/courses/:id', component: Course },
    { path: '/courses/:id/progress', component: Progress },
    { path: '/lessons/:id', component: Lesson },
    { path: '/assignments/:id', component: Assignment },
  ],
})

router.beforeEach((to) => {
  if (!to.meta.public && !session.token) return { path: '/sign-in', query: { next: to.fullPath } }
})
