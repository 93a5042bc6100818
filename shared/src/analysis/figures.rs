//! How the analyses write money and instants.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

/// Money is reported to 10 decimal places (a ten-billionth of a dollar): far below any bill's
/// rounding, so sums of reported figures still agree with the totals.
pub const MONEY_DECIMAL_PLACES: u32 = 10;

pub fn money(value: Decimal) -> Decimal {
    value
        .round_dp_with_strategy(MONEY_DECIMAL_PLACES, RoundingStrategy::MidpointNearestEven)
        .normalize()
}

/// An instant as RFC 3339, whole seconds, `Z`.
pub fn instant(unix_seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix_seconds.to_string())
}
