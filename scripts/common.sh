# Shared by scripts/dev and scripts/test: where builds go and what must be
# on the machine before cargo runs. Sourced, not executed.

# Builds live outside the clone so that a fresh clone (and CI on the same
# machine) reuses them instead of compiling everything again.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lyceum/target}"
mkdir -p "$CARGO_TARGET_DIR"

# rustup installs cargo under ~/.cargo/bin, which a non-login shell may miss.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "lyceum: cargo is not installed; this machine needs a Rust toolchain (rustup) first" >&2
  exit 1
fi
