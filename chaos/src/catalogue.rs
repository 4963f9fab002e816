//! The catalogue: every drill file in a folder (`chaos/drills/` in the
//! repository), each validated against the same cluster. `lyceum chaos list`
//! shows it; a file that does not validate is listed with its refusals
//! rather than hidden, so a broken drill is noticed before it is needed.

use std::path::{Path, PathBuf};

use crate::cluster::Cluster;
use crate::drill::Drill;
use crate::error::DrillErrors;

/// Most files a catalogue folder may hold; a folder with more is not a
/// catalogue of drills.
pub const CATALOGUE_FILES_MAX: usize = 256;

/// One file of the catalogue.
#[derive(Debug)]
pub struct Entry {
    /// The file.
    pub path: PathBuf,
    /// The drill, or why it was refused.
    pub drill: Result<Drill, DrillErrors>,
}

/// Why a catalogue could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The folder cannot be read.
    #[error("cannot read the drill folder {path}: {source}")]
    Unreadable {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// More than [`CATALOGUE_FILES_MAX`] `.toml` files.
    #[error("the drill folder holds more than {CATALOGUE_FILES_MAX} drill files")]
    TooMany,
}

impl CatalogueError {
    /// The stable string code of the error.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unreadable { .. } => "catalogue_unreadable",
            Self::TooMany => "catalogue_too_many",
        }
    }
}

/// Every `*.toml` file of `dir`, sorted by name, each loaded and validated.
///
/// # Errors
/// [`CatalogueError`] when the folder cannot be read or holds too many files.
pub fn list(dir: &Path, cluster: &Cluster) -> Result<Vec<Entry>, CatalogueError> {
    let unreadable = |source| CatalogueError::Unreadable {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            if paths.len() == CATALOGUE_FILES_MAX {
                return Err(CatalogueError::TooMany);
            }
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let drill = Drill::load(&path, cluster);
            Entry { path, drill }
        })
        .collect())
}

/// The catalogue as text, one drill a line (what `lyceum chaos list`
/// prints): its name, its faults' kinds, whether it needs root, and its
/// title; a refused file with each refusal indented below it.
pub fn listing(entries: &[Entry]) -> String {
    let mut out = String::new();
    for entry in entries {
        let stem = entry
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match &entry.drill {
            Ok(drill) => {
                let mut kinds: Vec<&str> = drill.faults().iter().map(|f| f.kind()).collect();
                kinds.dedup();
                out.push_str(&format!(
                    "{stem}  [{}]{}  {}\n",
                    kinds.join(", "),
                    if drill.needs_root() { " (root)" } else { "" },
                    drill.title()
                ));
            }
            Err(errors) => {
                out.push_str(&format!("{stem}  refused:\n"));
                for error in &errors.0 {
                    out.push_str(&format!("    {error}\n"));
                }
            }
        }
    }
    out
}
