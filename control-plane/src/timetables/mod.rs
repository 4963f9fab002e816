//! Timetables: when classes and exams happen, where, in which languages
//! and for how many learners, imported from iCalendar or CSV files, so
//! that sandbox pools can be warmed before a burst (issue 20). The
//! parsers ([`calendar`], [`csv_rows`]) turn a file into event drafts and
//! name the line or the component and property of every problem;
//! [`expand`] turns recurrences into occurrences within the configured
//! limits; [`store`] fills in defaults from the course, cohort and live
//! class, and writes or reads them. [`forecast`] turns sessions, learned
//! rates and the observed rate into expected runs and warm targets per
//! minute (pure); [`demand`] reads its inputs. Leaves `model` and `error`
//! are shared.
//! See [timetables](../../../docs/design/timetables.md).
//!
//! Tenant-scoped: every store function takes the tenant id.

pub mod calendar;
pub mod csv_rows;
pub mod demand;
pub mod error;
pub mod expand;
pub mod forecast;
pub mod model;
pub mod store;

pub use error::TimetableError;
pub use model::*;
