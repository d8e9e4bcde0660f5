//! Scoring a model's predictions as `!test` (and `sandbot calibrate`) do:
//! an empty prediction is "I don't know", which is right for a question
//! the model was never taught and wrong, but not a wrong answer, for one
//! it was.

/// The counts a test reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Score {
    pub total: u32,
    pub right: u32,
    /// Items with an expected answer, and how many got it.
    pub taught: u32,
    pub answered: u32,
    /// Items the model should not know, and how many it rightly did not.
    pub untaught: u32,
    pub declined: u32,
    /// Answers given that were wrong: another fact, or one for a question
    /// it should not know.
    pub wrong: u32,
}

impl Score {
    /// Counts one item (`expected` is `None` for one the model should not
    /// know); whether the model got it right.
    pub fn add(&mut self, expected: Option<&str>, got: &str) -> bool {
        self.total += 1;
        let said_nothing = got.trim().is_empty();
        let right = match expected {
            Some(expected) => {
                self.taught += 1;
                let right = same(got, expected);
                self.answered += u32::from(right);
                self.wrong += u32::from(!right && !said_nothing);
                right
            }
            None => {
                self.untaught += 1;
                self.declined += u32::from(said_nothing);
                self.wrong += u32::from(!said_nothing);
                said_nothing
            }
        };
        self.right += u32::from(right);
        right
    }

    /// The report's lines.
    pub fn report(&self) -> String {
        let pct = |n: u32, of: u32| 100.0 * n as f64 / of.max(1) as f64;
        let mut text = format!("Accuracy: {}/{} ({:.0}%)", self.right, self.total, pct(self.right, self.total));
        if self.untaught > 0 {
            text.push_str(&format!(
                "\nAnswered with the taught answer: {}/{} ({:.0}%)\nRightly said “I don't know”: {}/{} ({:.0}%)",
                self.answered,
                self.taught,
                pct(self.answered, self.taught),
                self.declined,
                self.untaught,
                pct(self.declined, self.untaught)
            ));
        }
        text.push_str(&format!("\nWrong answers: {} ({:.0}%)", self.wrong, pct(self.wrong, self.total)));
        text
    }
}

/// Equal, ignoring case, spacing and final punctuation.
pub fn same(a: &str, b: &str) -> bool {
    let norm =
        |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").trim_end_matches(['.', '!', '?']).to_lowercase();
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_answers_and_rightful_dont_knows_are_counted_apart() {
        let mut score = Score::default();
        assert!(score.add(Some("Paris."), "paris"));
        assert!(!score.add(Some("Paris."), ""));
        assert!(!score.add(Some("Paris."), "Rome"));
        assert!(score.add(None, ""));
        assert!(!score.add(None, "Rome"));
        assert_eq!(score, Score { total: 5, right: 2, taught: 3, answered: 1, untaught: 2, declined: 1, wrong: 2 });
        assert_eq!(
            score.report(),
            "Accuracy: 2/5 (40%)\nAnswered with the taught answer: 1/3 (33%)\n\
             Rightly said “I don't know”: 1/2 (50%)\nWrong answers: 2 (40%)"
        );
    }
}
