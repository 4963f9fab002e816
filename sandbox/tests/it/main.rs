//! Sandbox integration tests against the real Docker engine that
//! `scripts/test` starts, with the runtimes it installs. Nothing is mocked:
//! the image is imported, containers are warmed and locked down, and the
//! agent runs inside them. A missing engine or runtime fails the suite.

mod adversarial;
mod languages;
mod limits;
mod pipeline;
mod support;
mod validation;
