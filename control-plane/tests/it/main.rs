//! Control-plane integration tests. Every storage test runs twice: against
//! an embedded SQLite file and against a real PostgreSQL server (a fresh
//! database per test, created through `LYCEUM_TEST_DATABASE_URL`, which
//! `scripts/test` sets after starting PostgreSQL). A missing server fails the
//! suite; it never skips.

mod auth_api;
mod billing;
mod catalogue;
mod catalogue_cache;
mod content;
mod databases;
mod demo;
mod enrollments;
mod events;
mod identity;
mod ledger;
mod live;
mod openapi;
mod outage;
mod paths;
mod progress;
mod router;
mod submissions;
mod tenants;
mod timetables;
