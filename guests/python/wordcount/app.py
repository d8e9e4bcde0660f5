"""`!pycount <text>`: counts the words of a text and names the most
common one. A sandbot command in Python, built with componentize-py
against wit/0.2.1 (see docs/writing-a-command.md).
"""
import wit_world
from componentize_py_types import Err
from wit_world.imports import chat, log, types

USAGE = "pycount <text…>"


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.CommandInfo:
        return types.CommandInfo(
            name="pycount",
            summary="Counts the words of a text (a command in Python).",
            usage=USAGE,
            needs=["chat.send-message"],
            options=[
                types.CommandOption(
                    name="text",
                    description="The text to count",
                    kind=types.OptionKind.STRING,
                    required=True,
                    choices=[],
                )
            ],
        )

    def handle(self, invocation: types.Invocation) -> None:
        words = [w.strip(".,;:!?\"'()").lower() for w in invocation.args.split()]
        words = [w for w in words if w]
        if not words:
            # An `Err` is the reply the user reads.
            raise Err(f"Give me some text to count.\nUsage: `{invocation.prefix}{USAGE}`")
        # componentize-py packs the modules the code imports; one a library
        # imports only when called (Counter.most_common's heapq) would be
        # missing at run time, so keep to what is imported up front.
        counts: dict[str, int] = {}
        for w in words:
            counts[w] = counts.get(w, 0) + 1
        word, times = max(counts.items(), key=lambda kv: kv[1])
        log.log(log.Level.DEBUG, f"counted {len(words)} words")
        try:
            chat.send_message(f"{len(words)} words; the most common is “{word}” ({times}×).", [])
        except Err as e:
            # A host error (e.g. not granted): say so in one sentence.
            raise Err(f"I could not answer: {e.value}")
