//! Tests of what only the SQLite store does; the `JobStore` contract is in `store::conformance`.

use chrono::{SubsecRound, TimeZone, Utc};

use super::*;

#[test]
fn timestamps_round_trip_at_microsecond_precision_and_sort_as_text() {
    let at = Utc.with_ymd_and_hms(2026, 11, 26, 8, 5, 3).unwrap() + chrono::Duration::nanoseconds(123_456_789);
    let text = encode_time(at);
    assert_eq!(text, "2026-11-26T08:05:03.123456Z");
    assert_eq!(decode_time(&text).unwrap(), at.trunc_subsecs(6));
    let whole = Utc.with_ymd_and_hms(2026, 11, 26, 8, 5, 3).unwrap();
    assert_eq!(encode_time(whole), "2026-11-26T08:05:03.000000Z");
    assert!(encode_time(whole) < text);
}
