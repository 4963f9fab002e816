//! Output comparison, done on the host, never inside the sandbox (a program
//! must not be able to influence its own verdict).

use serde::{Deserialize, Serialize};

/// How a test's expected output is compared with the actual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Byte for byte.
    Exact,
    /// Ignoring trailing whitespace on each line and trailing empty lines.
    #[default]
    Trimmed,
    /// As whitespace-separated tokens.
    Tokens,
    /// As tokens, numbers equal within an absolute or relative tolerance.
    Float,
}

/// Tolerance of [`Compare::Float`] when a test names none.
pub const FLOAT_TOLERANCE_DEFAULT: f64 = 1e-6;

fn trimmed_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// True when `actual` matches `expected` under `mode` (`tolerance` only
/// matters for [`Compare::Float`]).
pub fn matches(mode: Compare, tolerance: f64, expected: &str, actual: &str) -> bool {
    match mode {
        Compare::Exact => expected == actual,
        Compare::Trimmed => trimmed_lines(expected) == trimmed_lines(actual),
        Compare::Tokens => expected.split_whitespace().eq(actual.split_whitespace()),
        Compare::Float => {
            let expected: Vec<&str> = expected.split_whitespace().collect();
            let actual: Vec<&str> = actual.split_whitespace().collect();
            expected.len() == actual.len()
                && expected.iter().zip(&actual).all(|(e, a)| {
                    match (e.parse::<f64>(), a.parse::<f64>()) {
                        (Ok(e), Ok(a)) if e.is_finite() && a.is_finite() => {
                            let diff = (e - a).abs();
                            diff <= tolerance || diff <= tolerance * e.abs().max(a.abs())
                        }
                        _ => e == a,
                    }
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(mode: Compare, expected: &str, actual: &str, want: bool) {
        let got = matches(mode, FLOAT_TOLERANCE_DEFAULT, expected, actual);
        assert_eq!(got, want, "{mode:?} {expected:?} {actual:?}");
    }

    #[test]
    fn modes() {
        check(Compare::Exact, "5\n", "5\n", true);
        check(Compare::Exact, "5\n", "5", false);
        check(Compare::Trimmed, "5", "5  \n\n", true);
        check(Compare::Trimmed, "a b", "a  b", false);
        check(Compare::Trimmed, "", "\n", true);
        check(Compare::Tokens, "a b\nc", "a\nb   c\n", true);
        check(Compare::Tokens, "a b", "a b c", false);
        check(Compare::Float, "0.3333333", "0.33333331", true);
        check(Compare::Float, "0.5", "0.51", false);
        check(Compare::Float, "x 1", "x 1.0000000001", true);
        check(Compare::Float, "NaN", "NaN", true);
        check(Compare::Float, "1", "inf", false);
    }
}
