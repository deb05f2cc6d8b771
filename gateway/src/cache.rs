//! In-process moka caches. Each cache states its TTL and why serving data that old is safe.

use boxoffice_domain::Config;

/// Every cache of one gateway replica.
#[derive(Clone)]
pub struct Caches {}

impl Caches {
    /// Builds the caches with their configured capacities and TTLs.
    pub fn new(_config: &Config) -> Self {
        Self {}
    }
}
