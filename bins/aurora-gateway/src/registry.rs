//! Builds the linked provider plugins (collected with `inventory`) into connectors.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use connector_core::{plugin, Connector, Platform, ProviderId};

// Link every provider crate; without this line their registrations would not be in the binary.
use connectors_all as _;

/// The built connectors by provider id.
pub type Connectors = BTreeMap<ProviderId, Arc<dyn Connector>>;

/// Build every registered plugin once. A duplicate id or a plugin that fails to build stops start-up.
pub fn build_connectors(platform: &Platform) -> anyhow::Result<Connectors> {
    let registry = plugin::registered().context("folding the plugin registry")?;
    let mut out = Connectors::new();
    for (id, descriptor) in registry {
        let connector = (descriptor.build)(platform)
            .with_context(|| format!("building the `{id}` connector"))?;
        let info = connector.info();
        anyhow::ensure!(
            info.id.as_str() == id,
            "plugin `{id}` built a connector that calls itself `{}`",
            info.id
        );
        out.insert(info.id, connector);
    }
    Ok(out)
}

/// The ids of the linked plugins.
pub fn registered_ids() -> anyhow::Result<Vec<&'static str>> {
    Ok(plugin::registered()?.into_keys().collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_holds_exactly_the_linked_providers() {
        let ids = super::registered_ids().unwrap();
        assert_eq!(ids, connectors_all::LINKED);
    }
}
