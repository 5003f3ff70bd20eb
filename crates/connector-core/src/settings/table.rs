//! `settings_struct!`: a settings struct declared as a table, one line per variable (field, type,
//! default, variable name and bounds), from which the serde attributes and `Default` are written.

/// Declares a settings struct read with [`Settings::extract`](crate::settings::Settings::extract):
/// each field is `vis name: Type = default, "variable"` and optionally `, "deserializer"` (a
/// [`Range`](crate::settings::Range) path such as `"AtLeast::<1>::secs"`, resolved where the
/// macro is called). The struct derives `serde::Deserialize` with `#[serde(default)]`, each field
/// is renamed to its variable (the name after the prefix), and `Default` gives the defaults.
///
/// ```
/// # use std::time::Duration;
/// # use connector_core::settings::{AtLeast, Range, Settings};
/// connector_core::settings_struct! {
///     /// Demo settings.
///     #[derive(Debug)]
///     pub struct Demo {
///         /// `AURORA_DEMO_TIMEOUT_SECS` (10).
///         pub timeout: Duration = Duration::from_secs(10), "timeout_secs", "Range::<1, 300>::secs";
///         pub verbose: bool = false, "verbose";
///     }
/// }
/// let d: Demo = Settings::new().with("AURORA_DEMO_TIMEOUT_SECS", "2m").extract("AURORA_DEMO_").unwrap();
/// assert_eq!((d.timeout, d.verbose), (Duration::from_secs(120), false));
/// let e = Settings::new().with("AURORA_DEMO_TIMEOUT_SECS", "0");
/// let e = e.extract::<Demo>("AURORA_DEMO_").err().unwrap();
/// assert_eq!(e, "AURORA_DEMO_TIMEOUT_SECS must be between 1 and 300 seconds");
/// ```
#[macro_export]
macro_rules! settings_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident: $ty:ty = $default:expr, $var:literal $(, $with:literal)?;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(default)]
        $vis struct $name {
            $(
                $(#[$fmeta])*
                #[serde(rename = $var $(, deserialize_with = $with)?)]
                $fvis $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $($field: $default,)*
                }
            }
        }
    };
}
