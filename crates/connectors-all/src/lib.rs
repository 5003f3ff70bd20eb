//! The facade that links the provider plugins: a crate only listed in Cargo.toml is not linked and
//! its `inventory` registration would vanish, so each provider is named here with `extern crate`.
//!
//! Each provider sits behind a Cargo feature of the same name; `default = ["all"]` links every one.
//! To add a provider: one optional dependency line and one feature (also listed in `all`) in this
//! crate's Cargo.toml, and below one `extern crate` line and one `LINKED` entry, both under that
//! feature. `cargo xtask new-provider` writes all four.

#[cfg(feature = "aws")]
extern crate connector_aws;
#[cfg(feature = "azure")]
extern crate connector_azure;
#[cfg(feature = "gcp")]
extern crate connector_gcp;
#[cfg(feature = "scaleway")]
extern crate connector_scaleway;
#[cfg(feature = "tailscale")]
extern crate connector_tailscale;

/// The provider ids this facade links (those whose feature is on), sorted as the registry folds
/// them. The gateway's registry test checks that the plugin registry holds exactly these.
pub const LINKED: &[&str] = &[
    #[cfg(feature = "aws")]
    "aws",
    #[cfg(feature = "azure")]
    "azure",
    #[cfg(feature = "gcp")]
    "gcp",
    #[cfg(feature = "scaleway")]
    "scaleway",
    #[cfg(feature = "tailscale")]
    "tailscale",
];

#[cfg(test)]
mod tests {
    use super::LINKED;

    #[test]
    fn linked_ids_are_sorted_and_unique() {
        assert!(LINKED.windows(2).all(|w| w[0] < w[1]), "{LINKED:?}");
    }

    #[test]
    fn linked_ids_follow_the_features() {
        assert_eq!(LINKED.contains(&"aws"), cfg!(feature = "aws"));
        assert_eq!(LINKED.contains(&"azure"), cfg!(feature = "azure"));
        assert_eq!(LINKED.contains(&"gcp"), cfg!(feature = "gcp"));
        assert_eq!(LINKED.contains(&"scaleway"), cfg!(feature = "scaleway"));
        assert_eq!(LINKED.contains(&"tailscale"), cfg!(feature = "tailscale"));
    }

    #[test]
    fn the_registry_holds_exactly_the_linked_providers() {
        let ids: Vec<&str> = connector_core::plugin::registered()
            .unwrap()
            .into_keys()
            .collect();
        assert_eq!(ids, LINKED);
    }
}
