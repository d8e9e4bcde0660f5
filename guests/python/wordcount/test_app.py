"""`make test` runs these on plain CPython, with sandbot_testing's fake host
(see docs/writing-a-command.md)."""
import unittest

from sandbot_testing import FakeHost, invocation

from app import WitWorld


class WordCount(unittest.TestCase):
    def test_counts_words_and_names_the_most_common(self):
        done = FakeHost().run(WitWorld(), invocation("pycount", "The cat and the hat, and THE bat."))
        self.assertEqual(done.replies, ["8 words; the most common is “the” (3×)."])
        self.assertEqual(len(done.logs), 1)
        self.assertIsNone(done.error)

    def test_nothing_to_count_says_how(self):
        done = FakeHost().run(WitWorld(), invocation("pycount", " ... "))
        self.assertEqual(done.error, "Give me some text to count.\nUsage: `!pycount <text…>`")
        self.assertEqual(done.replies, [])

    def test_without_its_grant_it_says_so(self):
        done = FakeHost(grants=[]).run(WitWorld(), invocation("pycount", "a b"))
        self.assertEqual(done.denied, ["chat.send-message"])
        self.assertTrue(done.error.startswith("I could not answer:"), done.error)


if __name__ == "__main__":
    unittest.main()
