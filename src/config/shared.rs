//! The settings in force, as one copy the whole daemon shares. A reload
//! publishes a new version once; every reader (the HTTP layer, the batch
//! runner, the dispatcher, each worker) sees it at its next read, instead
//! of each keeping its own copy that a reload must reach one by one. The
//! version number lets a reader that derives state from the settings (the
//! dispatcher resizing the pool, a worker's session) notice a new version
//! cheaply.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Settings;

/// One version of the settings.
#[derive(Debug)]
pub struct Versioned {
    /// 1 at start, one more at each reload applied.
    pub version: u64,
    pub settings: Arc<Settings>,
}

/// A handle on the settings in force; clones share the one copy.
#[derive(Clone)]
pub struct SharedSettings(Arc<ArcSwap<Versioned>>);

impl std::fmt::Debug for SharedSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedSettings")
            .field(&self.version())
            .finish()
    }
}

impl SharedSettings {
    /// `settings` as version 1.
    pub fn new(settings: Settings) -> Self {
        let first = Versioned {
            version: 1,
            settings: Arc::new(settings),
        };
        Self(Arc::new(ArcSwap::from_pointee(first)))
    }

    /// The settings in force now, with their version. A caller that holds
    /// them keeps that version however many reloads follow.
    pub fn current(&self) -> Arc<Versioned> {
        self.0.load_full()
    }

    /// The settings in force now.
    pub fn get(&self) -> Arc<Settings> {
        self.0.load().settings.clone()
    }

    /// The version in force now.
    pub fn version(&self) -> u64 {
        self.0.load().version
    }

    /// Puts `settings` in force for every reader, as the next version,
    /// which is returned.
    pub fn publish(&self, settings: Settings) -> u64 {
        let settings = Arc::new(settings);
        let published = self.0.rcu(|old| Versioned {
            version: old.version + 1,
            settings: settings.clone(),
        });
        published.version + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_reload_every_reader_observes_the_new_version() {
        let shared = SharedSettings::new(Settings::from_toml("[pool]\nsize = 1\n").unwrap());
        // The readers: each component holds a clone of the handle.
        let readers: Vec<SharedSettings> = (0..4).map(|_| shared.clone()).collect();
        let before = readers[0].current();
        assert_eq!(before.version, 1);
        let version = shared.publish(Settings::from_toml("[pool]\nsize = 3\n").unwrap());
        assert_eq!(version, 2);
        for reader in &readers {
            assert_eq!(reader.version(), 2);
            assert_eq!(reader.get().pool.size, 3);
            assert_eq!(reader.current().version, 2);
        }
        // What a reader took before the reload stays as it was (a request
        // keeps the settings it started with).
        assert_eq!((before.version, before.settings.pool.size), (1, 1));
        assert_eq!(readers[1].publish(Settings::default()), 3);
        assert_eq!(shared.version(), 3, "any handle publishes for all");
    }
}
