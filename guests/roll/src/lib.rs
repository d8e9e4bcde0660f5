//! `!roll` — rolls dice: `2d6+3`, `d20`, `4d8-1`. An example of the SDK's
//! helpers: randomness from the host, bounded numbers, usage errors that
//! say why, and tests on the SDK's fake host.
//!
//! ```text
//! !roll [dice]      dice as NdS±B; 1d6 when not given
//! ```

use sandbot_sdk::{
    command, log_debug, number_in, random, reply, Command, CommandInfo, CommandOption, Error, Invocation,
};

struct Roll;

impl Command for Roll {
    fn describe() -> CommandInfo {
        CommandInfo::new("roll", "Rolls dice, like 2d6+3.", "roll [dice, like 2d6+3]")
            .needs(&["chat.send-message"])
            .option(CommandOption::string("dice", "Dice to roll, like 2d6+3 (1d6 when empty)"))
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let text = invocation.string("dice").unwrap_or(&invocation.args).trim();
        let dice = Dice::parse(if text.is_empty() { "1d6" } else { text })
            .map_err(|why| Self::usage_error(&invocation, why))?;
        let rolls: Vec<i64> = (0..dice.count).map(|_| random::between(1, dice.sides)).collect();
        let total = rolls.iter().sum::<i64>() + dice.bonus;
        log_debug(format!("{dice}: {rolls:?} = {total}"));
        let shown = rolls.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        let bonus = match dice.bonus {
            0 => String::new(),
            b if b > 0 => format!(" + {b}"),
            b => format!(" − {}", -b),
        };
        reply(format!("🎲 {dice}: [{shown}]{bonus} = **{total}**"))?;
        Ok(())
    }
}

/// `count`d`sides`±`bonus`.
#[derive(Debug, PartialEq)]
struct Dice {
    count: u32,
    sides: i64,
    bonus: i64,
}

impl Dice {
    fn parse(text: &str) -> Result<Dice, Error> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
        let Some((count, rest)) = text.split_once('d') else {
            let shown: String = text.chars().take(20).collect();
            return Err(Error::reply(format!("`{shown}` is not dice: write them like 2d6+3")));
        };
        let count = if count.is_empty() { 1 } else { number_in("the number of dice", count, 1..=100)? };
        let (sides, bonus) = match rest.find(['+', '-']) {
            Some(at) => (&rest[..at], number_in("the bonus", &rest[at..], -1000..=1000)?),
            None => (rest, 0),
        };
        let sides = number_in("the number of sides", sides, 2..=1000)?;
        Ok(Dice { count, sides, bonus })
    }
}

impl std::fmt::Display for Dice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}d{}", self.count, self.sides)?;
        match self.bonus {
            0 => Ok(()),
            b => write!(f, "{b:+}"),
        }
    }
}

command!(Roll);

#[cfg(test)]
mod tests {
    use sandbot_sdk::testing::{invocation, FakeHost, InvocationExt};
    use sandbot_sdk::{Failure, OptionValue};

    use super::*;

    #[test]
    fn reads_dice_as_people_write_them() {
        assert_eq!(Dice::parse("2d6+3").unwrap(), Dice { count: 2, sides: 6, bonus: 3 });
        assert_eq!(Dice::parse("d20").unwrap(), Dice { count: 1, sides: 20, bonus: 0 });
        assert_eq!(Dice::parse(" 4 D 8 - 1 ").unwrap(), Dice { count: 4, sides: 8, bonus: -1 });
    }

    #[test]
    fn rolls_within_the_dice_and_adds_the_bonus() {
        for seed in 0..50 {
            let done = FakeHost::new().seed(seed).run::<Roll>(invocation("roll", "3d6+2"));
            let total: i64 = done.replies[0].rsplit("**").nth(1).unwrap().parse().unwrap();
            assert!((5..=20).contains(&total), "{}", done.replies[0]);
            assert!(done.replies[0].starts_with("🎲 3d6+2: ["), "{}", done.replies[0]);
        }
    }

    #[test]
    fn the_same_seed_rolls_the_same() {
        let roll = |seed| FakeHost::new().seed(seed).run::<Roll>(invocation("roll", "10d100")).replies;
        assert_eq!(roll(7), roll(7));
        assert_ne!(roll(7), roll(8));
    }

    #[test]
    fn the_slash_option_wins_over_the_text() {
        let asked = invocation("roll", "").slash().with("dice", OptionValue::String("1d2".into()));
        let done = FakeHost::new().run::<Roll>(asked);
        assert!(done.replies[0].starts_with("🎲 1d2: ["), "{:?}", done.replies);
    }

    #[test]
    fn a_bad_roll_says_why_and_how() {
        let said = |args| FakeHost::new().run::<Roll>(invocation("roll", args)).result.unwrap_err();
        assert_eq!(
            said("1000d6"),
            "The number of dice must be a whole number from 1 to 100, not `1000`.\nUsage: `!roll [dice, like 2d6+3]`"
        );
        assert_eq!(
            said("2d1"),
            "The number of sides must be a whole number from 2 to 1000, not `1`.\nUsage: `!roll [dice, like 2d6+3]`"
        );
        assert!(said("banana").starts_with("`banana` is not dice"));
        // The host logs a usage error as the user's doing, not a failure.
        let done = FakeHost::new().run::<Roll>(invocation("roll", "0d6"));
        assert!(matches!(done.failure, Some(Failure::Usage(_))), "{:?}", done.failure);
    }

    #[test]
    fn logs_what_it_rolled_for_the_operator() {
        let done = FakeHost::new().seed(1).run::<Roll>(invocation("roll", "2d6"));
        assert_eq!(done.logs.len(), 1);
        assert!(done.logs[0].1.starts_with("2d6: ["), "{:?}", done.logs);
    }
}
