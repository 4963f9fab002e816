//! The languages the sandbox runs, as one declarative table. Runtimes come
//! from the host's Debian packages (bind-mounted read-only at `/usr`), so a
//! row names absolute paths under `/usr/bin`; `{file}` in a command stands
//! for the entry file's name. Adding a language is adding a row (and its
//! Debian package to `scripts/services.sh runtimes`).

use serde::Serialize;

/// One language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Language {
    /// Stable id used in the API, such as `python`.
    pub id: &'static str,
    /// Human name.
    pub name: &'static str,
    /// Name of the entry file; the submission's first file is saved as this.
    pub file_name: &'static str,
    /// Compile command, if the language compiles.
    pub compile: Option<&'static [&'static str]>,
    /// Run command.
    pub run: &'static [&'static str],
    /// Command whose output names the runtime version.
    pub version: &'static [&'static str],
    /// Extra environment for compile and run.
    pub env: &'static [(&'static str, &'static str)],
    /// Memory added to the run's limit, for runtimes with a large floor (JVM).
    pub memory_headroom_mb: u32,
    /// Multiplier on the wall-clock limit for compilation.
    pub compile_wall_factor: u32,
}

/// Every language, in the order the API lists them.
pub const LANGUAGES: &[Language] = &[
    Language {
        id: "python",
        name: "Python 3",
        file_name: "main.py",
        compile: None,
        run: &["/usr/bin/python3", "-B", "main.py"],
        version: &["/usr/bin/python3", "--version"],
        env: &[("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1")],
        memory_headroom_mb: 0,
        compile_wall_factor: 1,
    },
    Language {
        id: "javascript",
        name: "JavaScript (Node.js)",
        file_name: "main.js",
        compile: None,
        run: &["/usr/bin/node", "main.js"],
        version: &["/usr/bin/node", "--version"],
        env: &[],
        memory_headroom_mb: 64,
        compile_wall_factor: 1,
    },
    Language {
        id: "c",
        name: "C (GCC)",
        file_name: "main.c",
        compile: Some(&[
            "/usr/bin/gcc",
            "-O2",
            "-std=c17",
            "-o",
            "main",
            "main.c",
            "-lm",
        ]),
        run: &["./main"],
        version: &["/usr/bin/gcc", "--version"],
        env: &[],
        memory_headroom_mb: 0,
        compile_wall_factor: 5,
    },
    Language {
        id: "cpp",
        name: "C++ (G++)",
        file_name: "main.cpp",
        compile: Some(&[
            "/usr/bin/g++",
            "-O2",
            "-std=c++17",
            "-o",
            "main",
            "main.cpp",
        ]),
        run: &["./main"],
        version: &["/usr/bin/g++", "--version"],
        env: &[],
        memory_headroom_mb: 0,
        compile_wall_factor: 8,
    },
    Language {
        id: "java",
        name: "Java (OpenJDK)",
        file_name: "Main.java",
        compile: Some(&[
            "/usr/bin/javac",
            "-J-XX:+UseSerialGC",
            "-J-XX:TieredStopAtLevel=1",
            "Main.java",
        ]),
        run: &[
            "/usr/bin/java",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xss64m",
            // A heap limit above the container's memory, so a hog meets
            // the cgroup's OOM killer (memory_limit_exceeded) rather than
            // the JVM's own smaller limit (an exception, runtime_error).
            // The heap still starts small and grows only as needed.
            "-Xmx2g",
            "Main",
        ],
        version: &["/usr/bin/java", "-version"],
        env: &[],
        memory_headroom_mb: 256,
        compile_wall_factor: 10,
    },
    Language {
        id: "go",
        name: "Go",
        file_name: "main.go",
        compile: Some(&["/usr/bin/go", "build", "-o", "main", "main.go"]),
        run: &["./main"],
        version: &["/usr/bin/go", "version"],
        env: &[
            ("GOCACHE", "/tmp/go-cache"),
            ("GOPATH", "/tmp/go"),
            ("GO111MODULE", "off"),
            ("CGO_ENABLED", "0"),
        ],
        memory_headroom_mb: 256,
        compile_wall_factor: 10,
    },
    Language {
        id: "rust",
        name: "Rust",
        file_name: "main.rs",
        compile: Some(&["/usr/bin/rustc", "-O", "-o", "main", "main.rs"]),
        run: &["./main"],
        version: &["/usr/bin/rustc", "--version"],
        env: &[],
        memory_headroom_mb: 256,
        compile_wall_factor: 10,
    },
    Language {
        id: "ruby",
        name: "Ruby",
        file_name: "main.rb",
        compile: None,
        run: &["/usr/bin/ruby", "main.rb"],
        version: &["/usr/bin/ruby", "--version"],
        env: &[],
        memory_headroom_mb: 0,
        compile_wall_factor: 1,
    },
    Language {
        id: "bash",
        name: "Bash",
        file_name: "main.sh",
        compile: None,
        run: &["/usr/bin/bash", "main.sh"],
        version: &["/usr/bin/bash", "--version"],
        env: &[],
        memory_headroom_mb: 0,
        compile_wall_factor: 1,
    },
    Language {
        id: "sql",
        name: "SQL (SQLite)",
        file_name: "main.sql",
        compile: None,
        run: &[
            "/usr/bin/sqlite3",
            "-bail",
            "-batch",
            ":memory:",
            ".read main.sql",
        ],
        version: &["/usr/bin/sqlite3", "--version"],
        env: &[],
        memory_headroom_mb: 0,
        compile_wall_factor: 1,
    },
];

/// Finds a language by id.
pub fn find(id: &str) -> Option<&'static Language> {
    LANGUAGES.iter().find(|lang| lang.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        assert!(LANGUAGES.len() >= 10);
        for (i, lang) in LANGUAGES.iter().enumerate() {
            assert!(
                LANGUAGES[..i].iter().all(|other| other.id != lang.id),
                "duplicate id {}",
                lang.id
            );
            assert!(!lang.file_name.contains('/'), "{}", lang.id);
            assert!(
                lang.run[0].starts_with('/') || lang.run[0] == "./main",
                "{}",
                lang.id
            );
            assert!(lang.compile_wall_factor >= 1, "{}", lang.id);
            assert_eq!(find(lang.id), Some(lang));
        }
    }
}
