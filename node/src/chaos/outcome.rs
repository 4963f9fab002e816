//! How a chaos command ends, and what it may do: the exit codes and this
//! process's privilege. A leaf, shared by `lyceum chaos list|check` and the
//! runner.

use chaos::cluster::Privilege;

/// Exit code of a command whose drill (or one of the catalogue's) is
/// refused, or of a run while another drill runs; 1 stays for failures to
/// run at all, 2 for a bad command line.
pub const EXIT_REFUSED: u8 = 3;

/// Exit code of a drill that ran and whose hypothesis did not hold.
pub const EXIT_DID_NOT_HOLD: u8 = 4;

/// Whether this process may perform OS-level faults.
pub(super) fn privilege() -> Privilege {
    if nix::unistd::geteuid().is_root() {
        Privilege::Root
    } else {
        Privilege::Unprivileged
    }
}
