//! Freezing a cgroup (`pause`): every process in it stops where it is,
//! until it is thawed. v1 has a `freezer` hierarchy (`freezer.state`); every
//! v2 group has `cgroup.freeze`. Each backend writes its own files
//! ([`super::super::v1`], [`super::super::v2`]); this is the one interface.

use anyhow::Result;

use super::super::{Backend, Cgroup};

/// What a group's freezer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    /// Asked to freeze; some processes still run on (on their way to a stop).
    Freezing,
    Frozen,
}

impl Cgroup {
    /// Freezes every process in the group: each stops where it is, as if
    /// never scheduled again, until [`Cgroup::thaw`]. Returns once all are
    /// frozen. Unlike `SIGSTOP`, the processes cannot notice, catch or undo it.
    pub fn freeze(&self) -> Result<()> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.set_frozen(true),
            Backend::V2(cgroup) => cgroup.set_frozen(true),
        }
    }

    /// Lets the processes of a frozen group run again.
    pub fn thaw(&self) -> Result<()> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.set_frozen(false),
            Backend::V2(cgroup) => cgroup.set_frozen(false),
        }
    }

    /// Whether the group is frozen.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.freezer_state(),
            Backend::V2(cgroup) => cgroup.freezer_state(),
        }
    }
}
