//! Numbers from what a user typed, within the bounds a command allows,
//! with a reason the user can act on when they are not.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::Error;

/// Parses `text` as a number in `range`; `what` names it for the user
/// ("the number of dice"). The error is a usage error:
/// "The number of dice must be a whole number from 1 to 100, not `1000`."
pub fn number_in<T>(what: &str, text: &str, range: RangeInclusive<T>) -> Result<T, Error>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    let (low, high) = (*range.start(), *range.end());
    let kind = if "0.5".parse::<T>().is_ok() { "a number" } else { "a whole number" };
    let bounds = format!("{kind} from {low} to {high}");
    let shown: String = text.trim().chars().take(20).collect();
    let why = match text.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => return Ok(n),
        Ok(_) => format!("{} must be {bounds}, not `{shown}`.", capitalised(what)),
        Err(_) if text.trim().is_empty() => format!("{} is missing: give {bounds}.", capitalised(what)),
        Err(_) => format!("{} must be {bounds}, not `{shown}`.", capitalised(what)),
    };
    Err(Error::Usage(why))
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_inside_the_bounds_is_read() {
        assert_eq!(number_in("the number of dice", " 3 ", 1..=100).unwrap(), 3);
        assert_eq!(number_in("the bonus", "-5", -100i64..=100).unwrap(), -5);
        assert_eq!(number_in("the chance", "0.5", 0.0..=1.0).unwrap(), 0.5);
    }

    #[test]
    fn outside_the_bounds_or_not_a_number_says_why() {
        let said = |r: Result<u32, Error>| r.unwrap_err().to_string();
        assert_eq!(
            said(number_in("the number of dice", "1000", 1..=100)),
            "The number of dice must be a whole number from 1 to 100, not `1000`."
        );
        assert_eq!(
            said(number_in("the number of dice", "many", 1..=100)),
            "The number of dice must be a whole number from 1 to 100, not `many`."
        );
        assert_eq!(
            said(number_in("the number of dice", "", 1..=100)),
            "The number of dice is missing: give a whole number from 1 to 100."
        );
        let huge = "9".repeat(40);
        assert!(said(number_in("sides", &huge, 2..=1000)).ends_with(&format!("not `{}`.", &huge[..20])));
        assert!(matches!(number_in("x", "7", 1u8..=5), Err(Error::Usage(_))));
        let chance = number_in("the chance", "2", 0.0..=1.0).unwrap_err().to_string();
        assert_eq!(chance, "The chance must be a number from 0 to 1, not `2`.");
    }
}
