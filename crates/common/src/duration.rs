//! One duration grammar for every flag: `500ms`, `90s`, `10m`, `1h`, `1m30s`, `1.5s` or plain
//! seconds.

use std::time::Duration;

/// Parses a positive duration. Components (`<number><unit>`, units `ms`, `s`, `m`, `h`) add up;
/// a bare number is seconds. Zero, negative, empty and overflowing inputs are errors.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    let bad = || format!("{input:?} is not a duration (use e.g. 500ms, 90s, 10m, 1h30m)");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return finish(secs, bad);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let n: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "{input:?}: unknown unit {unit:?} (use ms, s, m or h)"
                ));
            }
        };
        total += n * scale;
        rest = next;
    }
    finish(total, bad)
}

fn finish(secs: f64, bad: impl Fn() -> String) -> Result<Duration, String> {
    if !secs.is_finite() || secs <= 0.0 || secs > 10.0 * 365.0 * 86_400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_former_grammars() {
        let d = |s| parse_duration(s).expect(s);
        assert_eq!(d("90"), Duration::from_secs(90));
        assert_eq!(d("90s"), Duration::from_secs(90));
        assert_eq!(d("10m"), Duration::from_secs(600));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d(" 2m "), Duration::from_secs(120));
    }

    #[test]
    fn refuses_what_is_not_a_positive_duration() {
        for bad in [
            "", "0", "0s", "-5s", "5x", "s", "1m30", "abc", "1e400", "ms",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,20}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn compound_forms_add_up(h in 0u64..50, m in 0u64..60, s in 1u64..60) {
            let text = format!("{h}h{m}m{s}s");
            proptest::prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(h * 3600 + m * 60 + s)));
        }
    }
}
