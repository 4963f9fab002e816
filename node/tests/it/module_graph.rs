//! The import graph between one crate's source files, read with `syn`, so
//! tidy tests can hold the layering rules of ARCHITECTURE.md against the
//! code: no file-level import cycle, and only named folders may import a
//! given third-party crate.
//!
//! An edge `a -> b` means file `a` names an item of file `b` through a
//! `use` or a path (`crate::…`, `super::…`, `self::…`, or a name brought in
//! by a `use`). Declaring `mod b;` is not an import. Test-only items
//! (`#[cfg(test)]`) are left out: tests may reach anywhere. Binaries
//! (`src/main.rs`, `src/bin/`) are separate crates and left out too.
//! Paths inside macro invocations are not seen; that is the one known gap.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// One crate's library files and the imports between them.
pub struct ModuleGraph {
    /// File (relative to the crate's `src/`) -> module path.
    modules: BTreeMap<String, Vec<String>>,
    /// File -> files it imports from, with the names that made the edge.
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// File -> first path segments of every external path it names.
    externals: BTreeMap<String, BTreeSet<String>>,
}

impl ModuleGraph {
    /// Reads every library file under `src`.
    pub fn read(src: &Path) -> Self {
        let mut files = Vec::new();
        collect(src, src, &mut files);
        let modules: BTreeMap<String, Vec<String>> = files
            .iter()
            .map(|rel| (rel.clone(), module_path(rel)))
            .collect();
        let by_path: HashMap<Vec<String>, String> = modules
            .iter()
            .map(|(file, path)| (path.clone(), file.clone()))
            .collect();
        let mut readers = BTreeMap::new();
        let mut test_only: Vec<Vec<String>> = Vec::new();
        for (file, module) in &modules {
            let text = std::fs::read_to_string(src.join(file)).expect("read source");
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("parse {file}: {e}"));
            let mut reader = Reader {
                module: module.clone(),
                aliases: HashMap::new(),
                paths: Vec::new(),
                test_modules: Vec::new(),
                children: BTreeSet::new(),
                module_depth: 0,
            };
            reader.visit_file(&ast);
            test_only.append(&mut reader.test_modules);
            readers.insert(file.clone(), reader);
        }
        // Files that are test modules (`#[cfg(test)] mod tests;`) and
        // everything under them are tests, not structure.
        let is_test = |path: &[String]| test_only.iter().any(|t| path.starts_with(t));
        let modules: BTreeMap<String, Vec<String>> = modules
            .into_iter()
            .filter(|(_, path)| !is_test(path))
            .collect();
        let mut edges = BTreeMap::new();
        let mut externals = BTreeMap::new();
        for file in modules.keys() {
            let reader = &readers[file];
            let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let mut ext = BTreeSet::new();
            for path in reader.resolved() {
                match path {
                    Named::Internal(path) => {
                        if let Some((target, name)) = resolve(&by_path, &path) {
                            if &target != file && modules.contains_key(&target) {
                                out.entry(target).or_default().insert(name);
                            }
                        }
                    }
                    Named::External(first) => {
                        ext.insert(first);
                    }
                }
            }
            edges.insert(file.clone(), out);
            externals.insert(file.clone(), ext);
        }
        ModuleGraph {
            modules,
            edges,
            externals,
        }
    }

    /// Every group of two or more files that import each other in a
    /// circle, each described with the edges inside it, for the failure
    /// message.
    pub fn cycles(&self) -> Vec<String> {
        let files: Vec<&String> = self.modules.keys().collect();
        let index: HashMap<&String, usize> =
            files.iter().enumerate().map(|(i, f)| (*f, i)).collect();
        let adjacency: Vec<Vec<usize>> = files
            .iter()
            .map(|f| self.edges[*f].keys().map(|t| index[t]).collect())
            .collect();
        strongly_connected(&adjacency)
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let members: BTreeSet<&String> = component.iter().map(|&i| files[i]).collect();
                let mut text = String::new();
                for from in &members {
                    for (to, names) in &self.edges[*from] {
                        if members.contains(to) {
                            let names: Vec<&str> = names.iter().map(String::as_str).collect();
                            text.push_str(&format!("  {from} -> {to}: {}\n", names.join(", ")));
                        }
                    }
                }
                text
            })
            .collect()
    }

    /// Files outside the allowed folders (prefixes relative to `src/`)
    /// that name the external crate `name`.
    pub fn importers_outside(&self, name: &str, allowed: &[&str]) -> Vec<String> {
        self.externals
            .iter()
            .filter(|(file, ext)| {
                ext.contains(name) && !allowed.iter().any(|prefix| file.starts_with(prefix))
            })
            .map(|(file, _)| file.clone())
            .collect()
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read src dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path
            .strip_prefix(root)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            if rel != "bin" {
                collect(root, &path, out);
            }
        } else if rel.ends_with(".rs") && rel != "main.rs" {
            out.push(rel);
        }
    }
}

fn module_path(rel: &str) -> Vec<String> {
    let stem = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The file that defines the longest prefix of `path`, and the name that
/// follows it (or the module's own name for a glob or a module import).
fn resolve(by_path: &HashMap<Vec<String>, String>, path: &[String]) -> Option<(String, String)> {
    (0..=path.len()).rev().find_map(|len| {
        by_path.get(&path[..len]).map(|file| {
            let name = path
                .get(len)
                .or_else(|| path.last())
                .cloned()
                .unwrap_or_else(|| "crate".to_owned());
            (file.clone(), name)
        })
    })
}

enum Named {
    Internal(Vec<String>),
    External(String),
}

/// Walks one file, remembering what each `use` brings into scope so that
/// later paths through those names resolve to the file they name.
struct Reader {
    module: Vec<String>,
    aliases: HashMap<String, Vec<String>>,
    paths: Vec<Vec<String>>,
    /// Module paths of `#[cfg(test)] mod name;` declared in this file.
    test_modules: Vec<Vec<String>>,
    /// Names of the modules this file declares (`mod name;`).
    children: BTreeSet<String>,
    /// How many inline modules deep the walk is.
    module_depth: usize,
}

impl Reader {
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.clone(),
            "super" => {
                let mut base = self.module.clone();
                base.pop();
                base
            }
            _ => return None,
        };
        let mut rest = rest;
        while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
            base.pop();
            rest = tail;
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn resolved(&self) -> Vec<Named> {
        self.paths
            .iter()
            .filter_map(|segments| {
                let first = segments.first()?;
                if let Some(path) = self.absolute(segments) {
                    return Some(Named::Internal(path));
                }
                if let Some(alias) = self.aliases.get(first) {
                    let mut path = alias.clone();
                    path.extend(segments[1..].iter().cloned());
                    return Some(Named::Internal(path));
                }
                if self.children.contains(first) {
                    // A path through a module this file declares.
                    let mut path = self.module.clone();
                    path.extend(segments.iter().cloned());
                    return Some(Named::Internal(path));
                }
                (segments.len() > 1).then(|| Named::External(first.clone()))
            })
            .collect()
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident.to_string(), None),
            syn::UseTree::Rename(r) => {
                self.use_leaf(prefix, &r.ident.to_string(), Some(r.rename.to_string()))
            }
            syn::UseTree::Glob(_) => self.paths.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], ident: &str, rename: Option<String>) {
        let mut full = prefix.to_vec();
        if ident != "self" {
            full.push(ident.to_owned());
        }
        let local = rename.unwrap_or_else(|| full.last().cloned().unwrap_or_default());
        if full.len() > 1
            || matches!(
                full.first().map(String::as_str),
                Some("crate" | "super" | "self")
            )
        {
            // Resolve relative to this file now; `use` paths starting with a
            // plain name are external crates (edition 2018+).
            if let Some(path) = self.absolute(&full) {
                self.aliases.insert(local, path);
            }
        }
        self.paths.push(full);
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

impl<'ast> Visit<'ast> for Reader {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            _ => &[],
        };
        if is_test_only(attrs) {
            if let syn::Item::Mod(m) = item {
                let mut path = self.module.clone();
                path.push(m.ident.to_string());
                self.test_modules.push(path);
            }
            return;
        }
        if let syn::Item::Mod(m) = item {
            if m.content.is_none() && self.module_depth == 0 {
                self.children.insert(m.ident.to_string());
            }
            if m.content.is_some() {
                // An inline module's `super` is this file; treat its body as
                // part of the file (its own `use`s resolve one level deeper).
                self.module.push(m.ident.to_string());
                self.module_depth += 1;
                syn::visit::visit_item_mod(self, m);
                self.module_depth -= 1;
                self.module.pop();
                return;
            }
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {
        // `pub(crate)` and `pub(super)` name a module but import nothing.
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.paths.push(segments);
        syn::visit::visit_path(self, path);
    }
}

/// Tarjan's strongly connected components, iteratively.
fn strongly_connected(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adjacency.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut components = Vec::new();
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0usize)];
        while let Some((v, child)) = work.pop() {
            if child == 0 {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adjacency[v].get(child) {
                work.push((v, child + 1));
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(component);
            }
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
        }
    }
    components
}
