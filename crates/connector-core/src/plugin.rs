//! The plugin descriptor collected with `inventory`, and the registry folded from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::connector::Connector;
use crate::platform::Platform;

/// What a provider crate submits with `inventory::submit!`. Plain function pointers, so the
/// descriptor is `'static` and costs nothing until the gateway builds it.
pub struct PluginDescriptor {
    /// The provider id (`scaleway`); must be unique across linked crates.
    pub id: &'static str,
    /// Build the connector from the shared platform services and configuration.
    pub build: fn(&Platform) -> Result<Arc<dyn Connector>, BuildError>,
}

impl std::fmt::Debug for PluginDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDescriptor")
            .field("id", &self.id)
            .finish()
    }
}

inventory::collect!(PluginDescriptor);

/// Register a provider plugin: `register_plugin!("scaleway", build_fn);`
#[macro_export]
macro_rules! register_plugin {
    ($id:expr, $build:path) => {
        $crate::inventory::submit! {
            $crate::plugin::PluginDescriptor { id: $id, build: $build }
        }
    };
}

/// A plugin could not be built (a missing or malformed setting).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("two linked plugins register the provider id `{0}`; remove one of the crates")]
    Duplicate(&'static str),
    #[error("plugin id `{0}` is not a valid provider id")]
    InvalidId(&'static str),
}

/// Fold descriptors into a map by id. A duplicate id is an error, never a silent override.
pub fn fold<'a>(
    descriptors: impl IntoIterator<Item = &'a PluginDescriptor>,
) -> Result<BTreeMap<&'static str, &'a PluginDescriptor>, RegistryError> {
    let mut map = BTreeMap::new();
    for d in descriptors {
        if crate::ids::ProviderId::parse(d.id).is_err() {
            return Err(RegistryError::InvalidId(d.id));
        }
        if map.insert(d.id, d).is_some() {
            return Err(RegistryError::Duplicate(d.id));
        }
    }
    Ok(map)
}

/// Every plugin linked into this binary.
pub fn registered() -> Result<BTreeMap<&'static str, &'static PluginDescriptor>, RegistryError> {
    fold(inventory::iter::<PluginDescriptor>)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nope(_: &Platform) -> Result<Arc<dyn Connector>, BuildError> {
        Err(BuildError("not built in tests".into()))
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let a = PluginDescriptor {
            id: "x",
            build: nope,
        };
        let b = PluginDescriptor {
            id: "y",
            build: nope,
        };
        let c = PluginDescriptor {
            id: "x",
            build: nope,
        };
        assert_eq!(fold([&a, &b]).unwrap().len(), 2);
        assert_eq!(
            fold([&a, &b, &c]).unwrap_err(),
            RegistryError::Duplicate("x")
        );
        let bad = PluginDescriptor {
            id: "Bad Id",
            build: nope,
        };
        assert_eq!(
            fold([&bad]).unwrap_err(),
            RegistryError::InvalidId("Bad Id")
        );
    }

    #[test]
    fn core_links_no_plugin() {
        assert!(registered().unwrap().is_empty());
    }
}
