"""A Python command that misbehaves on purpose, one way per argument; the
tests prove a Python guest gets the same sandbox as a Rust one.
"""
import wit_world
from componentize_py_types import Err
from wit_world.imports import chat, files, types


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.CommandInfo:
        return types.CommandInfo(
            name="pyhostile",
            summary="Misbehaves on purpose (Python).",
            usage="pyhostile hi|sneak|loop|alloc",
            needs=["chat.send-message"],
            options=[],
        )

    def handle(self, invocation: types.Invocation) -> None:
        how = invocation.args.strip()
        if how == "hi":
            chat.send_message(f"hi from Python, {invocation.message.author.name}", [])
        elif how == "sneak":
            # Not granted: the host says `denied`.
            try:
                files.read_file("shared", "secret.txt")
                chat.send_message("read it", [])
            except Err as e:
                chat.send_message(f"refused: {type(e.value).__name__}", [])
        elif how == "loop":
            while True:
                pass
        elif how == "alloc":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        else:
            raise Err("pyhostile hi|sneak|loop|alloc")
