//! Random numbers a command can trust: from the host's `wasi:random`
//! (the bot's secure generator) through `getrandom`, unbiased in every
//! range. std's `RandomState` uses WASI's *insecure* seed instead, so do not
//! build dice on a `HashMap`'s order.
//!
//! Under [`crate::testing::FakeHost`] the numbers come from the fake's seed,
//! so a test's dice are the same every run; `sandbot try --seed N` pins the
//! bot's generator the same way.

/// A random `u64`.
pub fn u64() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(n) = crate::testing::next_random() {
        return n;
    }
    // wasi:random never fails in the bot; a host that cannot give
    // randomness cannot run a command either.
    getrandom::u64().expect("the host's random generator")
}

/// A number in `0..n`, every one equally likely (`0` when `n` is 0).
pub fn below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // Reject the top of the range that would favour small numbers.
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = u64();
        if x < zone {
            return x % n;
        }
    }
}

/// A number from `low` to `high`, both included, every one equally likely.
/// The bounds may come in either order.
pub fn between(low: i64, high: i64) -> i64 {
    let (low, high) = if low <= high { (low, high) } else { (high, low) };
    let span = high.abs_diff(low);
    if span == u64::MAX {
        return u64() as i64;
    }
    low.wrapping_add(below(span + 1) as i64)
}

/// One of `items`, or `None` when there are none.
pub fn pick<T>(items: &[T]) -> Option<&T> {
    items.get(below(items.len() as u64) as usize).filter(|_| !items.is_empty())
}

/// Puts `items` in a random order (Fisher–Yates: every order equally likely).
pub fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_stays_inside_and_reaches_both_ends() {
        let mut seen = [false; 6];
        for _ in 0..2000 {
            let roll = between(1, 6);
            assert!((1..=6).contains(&roll));
            seen[(roll - 1) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
        assert_eq!(between(5, 5), 5);
        assert!((-3..=3).contains(&between(3, -3)));
        let _ = between(i64::MIN, i64::MAX);
    }

    #[test]
    fn below_is_not_biased_towards_small_numbers() {
        // 3 does not divide 2^64: a plain `% 3` would favour 0, slightly.
        // Over many rolls each count is within a few percent of a third.
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[below(3) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (9_000..11_000).contains(c)), "{counts:?}");
        assert_eq!(below(0), 0);
    }

    #[test]
    fn shuffle_keeps_every_item_and_pick_finds_one() {
        let mut items: Vec<u32> = (0..50).collect();
        shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert!(pick(&items).is_some());
        assert_eq!(pick::<u32>(&[]), None);
    }
}
