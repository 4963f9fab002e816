//! Validated names: a region such as `eu-west` and a node id. They live in their
//! own module because every other part of gossip (certificates, identities on
//! the wire, metrics labels) builds on them, and bad names must be refused at
//! the edge of the system instead of spreading through the cluster.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest region name or node id we accept, in bytes.
pub const NAME_BYTES_MAX: usize = 64;

/// Why a region name or node id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than [`NAME_BYTES_MAX`].
    #[error("must be at most {NAME_BYTES_MAX} bytes, got {0}")]
    TooLong(usize),
    /// The name has a character outside `a-z`, `0-9` and `-`.
    #[error("may only hold a-z, 0-9 and '-', and must start and end with a letter or digit")]
    BadCharacter,
}

fn check_name(text: &str) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if text.len() > NAME_BYTES_MAX {
        return Err(NameError::TooLong(text.len()));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !text.chars().all(ok_char) || text.starts_with('-') || text.ends_with('-') {
        return Err(NameError::BadCharacter);
    }
    Ok(())
}

/// A region name such as `eu-west`: lowercase, DNS-label friendly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Validates and wraps a region name.
    ///
    /// # Errors
    /// [`NameError`] saying what is wrong with the name.
    pub fn new(text: &str) -> Result<Self, NameError> {
        check_name(text)?;
        Ok(Self(text.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Region {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_name(&value)?;
        Ok(Self(value))
    }
}

impl From<Region> for String {
    fn from(value: Region) -> Self {
        value.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node id, stable across restarts of the same node (its data dir keeps it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// Validates and wraps a node id.
    ///
    /// # Errors
    /// [`NameError`] saying what is wrong with the id.
    pub fn new(text: &str) -> Result<Self, NameError> {
        check_name(text)?;
        Ok(Self(text.to_owned()))
    }

    /// A fresh id for a node in `region`: the region plus eight random hex digits.
    pub fn generate(region: &Region, random: u32) -> Self {
        let id = format!("{}-{random:08x}", region.as_str());
        assert!(check_name(&id).is_ok(), "generated node id {id} is invalid");
        Self(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_name(&value)?;
        Ok(Self(value))
    }
}

impl From<NodeId> for String {
    fn from(value: NodeId) -> Self {
        value.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), NameError>) {
        assert_eq!(Region::new(input).map(|_| ()), expected, "input {input:?}");
        assert_eq!(NodeId::new(input).map(|_| ()), expected, "input {input:?}");
    }

    #[test]
    fn names() {
        check("eu-west", Ok(()));
        check("ap-south-1", Ok(()));
        check("", Err(NameError::Empty));
        check("EU-west", Err(NameError::BadCharacter));
        check("-eu", Err(NameError::BadCharacter));
        check("eu-", Err(NameError::BadCharacter));
        check("eu west", Err(NameError::BadCharacter));
        check(&"a".repeat(NAME_BYTES_MAX), Ok(()));
        check(
            &"a".repeat(NAME_BYTES_MAX + 1),
            Err(NameError::TooLong(NAME_BYTES_MAX + 1)),
        );
    }

    #[test]
    fn generated_ids_are_valid() {
        let region = Region::new(&"r".repeat(NAME_BYTES_MAX - 9)).expect("valid region");
        let id = NodeId::generate(&region, u32::MAX);
        assert_eq!(id.as_str().len(), NAME_BYTES_MAX);
    }
}
