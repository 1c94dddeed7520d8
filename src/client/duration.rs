//! Parses the client's `--timeout` values: `500ms`, `30s`, `5m`, `1h`, `1m30s`, or plain seconds.

use std::time::Duration;

/// Parses a duration such as `30s`, `5m`, `1h30m` or `250ms`; a bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty duration".into());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?} is not a duration like 30s, 5m, 1h or 250ms"));
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| format!("{text:?}: the number is too large"))?;
        rest = &rest[digits..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => return Err(format!("{text:?}: unknown unit {other:?} (use ms, s, m or h)")),
        };
        rest = &rest[unit_end..];
        let amount = u32::try_from(amount).map_err(|_| format!("{text:?}: the number is too large"))?;
        total += unit.checked_mul(amount).ok_or_else(|| format!("{text:?} is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn units_and_combinations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("12"), Ok(Duration::from_secs(12)));
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(parse("").is_err());
        assert!(parse("s").is_err());
        assert!(parse("10x").is_err());
        assert!(parse("1.5s").is_err());
        assert!(parse("-3s").is_err());
    }
}
