"""Unit tests of a Python command without the bot.

componentize-py's `bindings` command writes the `wit_world` package as
plain Python, whose host functions only raise `NotImplementedError`.
`FakeHost` puts recording fakes in their place, so a test calls
`WitWorld().handle(invocation(...))` under ordinary CPython, as the Rust
SDK's `FakeHost` does for Rust commands. As in the bot, a call the
command's `describe().needs` does not cover is refused with `denied`.

    from sandbot_testing import FakeHost, invocation
    done = FakeHost().run(WitWorld(), invocation("pycount", "a b a"))
    assert done.replies == ["3 words; the most common is “a” (2×)."]
"""
from dataclasses import dataclass, field
from typing import List, Optional

from componentize_py_types import Err
from wit_world.imports import chat, files, log, model, store, types


@dataclass
class Outcome:
    """What one `handle()` did."""

    replies: List[str] = field(default_factory=list)
    private: List[str] = field(default_factory=list)
    logs: List[tuple] = field(default_factory=list)
    feedback: List[str] = field(default_factory=list)
    denied: List[str] = field(default_factory=list)
    prompts: List[str] = field(default_factory=list)
    # The `err` text `handle` raised (what the user reads), if any.
    error: Optional[str] = None


class FakeHost:
    def __init__(self, grants: Optional[List[str]] = None):
        self.grants = grants
        self.files = {}
        self.model_answers: List[str] = []

    def file(self, root: str, path: str, data: bytes) -> "FakeHost":
        self.files[(root, path)] = data
        return self

    def model_answer(self, text: str) -> "FakeHost":
        self.model_answers.append(text)
        return self

    def run(self, world, inv: types.Invocation) -> Outcome:
        grants = self.grants if self.grants is not None else world.describe().needs
        done = Outcome()

        def granted(interface: str, function: str):
            if interface not in grants and f"{interface}.{function}" not in grants:
                done.denied.append(f"{interface}.{function}")
                raise Err(types.Error_Denied(f"{interface}.{function} is not granted to this command"))

        def send_message(content, attached):
            granted("chat", "send-message")
            done.replies.append(content)
            return str(len(done.replies))

        def send_private(content, attached):
            granted("chat", "send-private")
            done.private.append(content)
            return str(len(done.private))

        def read_file(root, path):
            granted("files", "read-file")
            if (root, path) not in self.files:
                raise Err(types.Error_NotFound(path))
            return types.File(name=path.rsplit("/", 1)[-1], data=self.files[(root, path)])

        def call_model(prompt):
            granted("model", "call-model")
            done.prompts.append(prompt)
            if not self.model_answers:
                raise Err(types.Error_Unavailable("the fake model has no answer left"))
            return self.model_answers.pop(0)

        def log_feedback(text):
            granted("store", "log-feedback")
            done.feedback.append(text)
            return len(done.feedback)

        fakes = [
            (chat, "send_message", send_message),
            (chat, "send_private", send_private),
            (files, "read_file", read_file),
            (model, "call_model", call_model),
            (store, "log_feedback", log_feedback),
            (log, "log", lambda level, message: done.logs.append((level, message))),
        ]
        saved = [(module, name, getattr(module, name)) for module, name, _ in fakes]
        for module, name, fake in fakes:
            setattr(module, name, fake)
        try:
            world.handle(inv)
        except Err as e:
            done.error = e.value if isinstance(e.value, str) else repr(e.value)
        finally:
            for module, name, real in saved:
                setattr(module, name, real)
        return done


def invocation(command: str, args: str = "", author: str = "Ada") -> types.Invocation:
    """`!command args` by `author` in a server channel, as the bot builds it."""
    content = f"!{command} {args}".strip()
    return types.Invocation(
        command=command,
        args=args,
        prefix="!",
        source=types.Source.PREFIX,
        options=[],
        message=types.Message(
            id="1000",
            channel="2000",
            guild="3000",
            author=types.Author(id="4000", name=author, is_operator=False, roles=[], voice_channel=None),
            content=content,
            attachments=[],
        ),
    )
