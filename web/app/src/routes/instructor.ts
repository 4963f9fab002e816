// The instructor surface's pages (course, quiz and assignment builders, live
// console, class dashboard, timetables and the next week's forecast). Same `meta` conventions as learner.ts.
import type { RouteRecordRaw } from 'vue-router'
import Dashboard from '../views/Dashboard.vue'
import Timetables from '../views/Timetables.vue'
import Courses from '../views/builder/Courses.vue'
import CourseBuilder from '../views/builder/CourseBuilder.vue'
import UnitEditor from '../views/builder/UnitEditor.vue'

const authors = ['instructor', 'operator']

export const instructorRoutes: RouteRecordRaw[] = [
  { path: '/instructor/courses', component: Courses, meta: { nav: 'nav.builder', roles: authors } },
  { path: '/instructor/courses/:id', component: CourseBuilder, meta: { roles: authors } },
  { path: '/instructor/units/:id', component: UnitEditor, meta: { roles: authors } },
  { path: '/instructor/dashboard', component: Dashboard, meta: { nav: 'nav.dashboard', roles: authors } },
  { path: '/instructor/timetables', component: Timetables, meta: { nav: 'nav.timetables', roles: authors } },
]
