"""The language-model benchmark's peer: llama.cpp (llama-cpp-python, built
from source on this machine) on the same GGUF, prompts and settings as
`sandbot`: ChatML, greedy, repeat penalty 1.2 over the last 64 tokens,
two threads.

    llm_peer.py MODEL.gguf MAX_TOKENS SYSTEM QUESTION...

Prints one JSON line per question: {"question", "prompt_tokens",
"tokens", "first_token" (s), "seconds" (s)}, each the median of three.
Run by `cargo bench -p sandbot --bench model` from the venv that
`scripts/peers/install.sh` makes.
"""

import json
import statistics
import sys
import time

from llama_cpp import Llama


def main() -> None:
    model_path, max_tokens, system, questions = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    llm = Llama(model_path, n_threads=2, n_threads_batch=2, n_ctx=2048, verbose=False)

    def chatml(question: str) -> str:
        return (
            f"<|im_start|>system\n{system}<|im_end|>\n"
            f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        )

    def answer(question: str, limit: int):
        llm.reset()  # no prompt cache: sandbot reads every prompt afresh
        started = time.perf_counter()
        out = llm.create_completion(
            chatml(question),
            max_tokens=limit,
            temperature=0.0,
            top_k=1,
            repeat_penalty=1.2,
            stop=["<|im_end|>"],
        )
        return out["usage"]["completion_tokens"], time.perf_counter() - started

    answer(questions[0], max_tokens)  # warm-up, as sandbot's model is loaded first
    for question in questions:
        runs = [answer(question, max_tokens) for _ in range(3)]
        # The first token: the prompt read and one token out.
        first = [answer(question, 1)[1] for _ in range(3)]
        print(
            json.dumps(
                {
                    "question": question,
                    "prompt_tokens": len(llm.tokenize(chatml(question).encode(), special=True)),
                    "tokens": runs[0][0],
                    "first_token": statistics.median(first),
                    "seconds": statistics.median(r[1] for r in runs),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
