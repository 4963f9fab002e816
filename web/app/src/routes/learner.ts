// The learner surface's pages. `meta.nav` names the i18n key of a top-bar
// link; `meta.roles` limits a page (and its link) to those roles.
import type { RouteRecordRaw } from 'vue-router'
import SignIn from '../views/SignIn.vue'
import Catalogue from '../views/Catalogue.vue'
import Course from '../views/Course.vue'
import Lesson from '../views/Lesson.vue'
import Assignment from '../views/Assignment.vue'
import Progress from '../views/Progress.vue'
import Quiz from '../views/Quiz.vue'
import Live from '../views/Live.vue'

export const learnerRoutes: RouteRecordRaw[] = [
  { path: '/', redirect: '/courses' },
  { path: '/sign-in', component: SignIn, meta: { public: true } },
  { path: '/sign-up', component: SignIn, meta: { public: true, signUp: true } },
  { path: '/courses', component: Catalogue, meta: { nav: 'nav.catalogue' } },
  { path: '/courses/:id', component: Course },
  { path: '/courses/:id/progress', component: Progress },
  { path: '/lessons/:id', component: Lesson },
  { path: '/assignments/:id', component: Assignment },
  { path: '/quizzes/:id', component: Quiz },
  { path: '/live/:id', component: Live },
]
