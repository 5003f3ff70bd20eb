//! Bounded settings: `Range::<MIN, MAX>` and `AtLeast::<MIN>` deserializers for integers and durations.

use super::*;

/// Bounds of a setting, used as `#[serde(deserialize_with = "Range::<1, 300>::secs")]`: the value
/// must lie within `MIN..=MAX` (in the variable's unit for durations); the error says so.
#[derive(Debug)]
pub struct Range<const MIN: u64, const MAX: u64>;

/// A lower bound only: `#[serde(deserialize_with = "AtLeast::<1>::int")]`.
pub type AtLeast<const MIN: u64> = Range<MIN, { u64::MAX }>;

/// The unit of a duration variable: a plain number counts in it.
#[derive(Clone, Copy)]
pub(super) enum Unit {
    Millis,
    Secs,
    Days,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Secs => "seconds",
            Unit::Days => "days",
        }
    }

    fn duration(self, n: u64) -> Duration {
        match self {
            Unit::Millis => Duration::from_millis(n),
            Unit::Secs => Duration::from_secs(n),
            Unit::Days => Duration::from_secs(n.saturating_mul(86_400)),
        }
    }
}

impl<const MIN: u64, const MAX: u64> Range<MIN, MAX> {
    fn bounds(unit: &str) -> String {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        match (MIN, MAX) {
            (_, u64::MAX) => format!("must be at least {MIN}{unit}"),
            (0, _) => format!("must be at most {MAX}{unit}"),
            _ => format!("must be between {MIN} and {MAX}{unit}"),
        }
    }

    /// A whole number within the bounds.
    pub fn int<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
        let n = u64::deserialize(d)?;
        if !(MIN..=MAX).contains(&n) {
            return Err(de::Error::custom(Self::bounds("")));
        }
        T::try_from(n).map_err(|_| de::Error::custom(Self::bounds("")))
    }

    /// Milliseconds (a plain number), or a duration such as `1500ms` or `2s`.
    pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Self::duration(d, Unit::Millis)
    }

    /// Seconds (a plain number), or a duration such as `90s` or `5m`.
    pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Self::duration(d, Unit::Secs)
    }

    /// Days (a plain number), or a duration such as `2weeks`.
    pub fn days<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Self::duration(d, Unit::Days)
    }

    fn duration<'de, D: Deserializer<'de>>(d: D, unit: Unit) -> Result<Duration, D::Error> {
        let value = d.deserialize_any(DurationVisitor(unit))?;
        if value < unit.duration(MIN) || value > unit.duration(MAX) {
            return Err(de::Error::custom(Self::bounds(unit.name())));
        }
        Ok(value)
    }
}

pub(super) struct DurationVisitor(Unit);

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a number of {} or a duration such as 90s", self.0.name())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        Ok(self.0.duration(n))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
        match s.parse::<u64>() {
            Ok(n) => Ok(self.0.duration(n)),
            Err(_) => humantime::parse_duration(s.trim()).map_err(|_| {
                E::custom(format!(
                    "must be a number of {} or a duration such as 90s",
                    self.0.name()
                ))
            }),
        }
    }
}
