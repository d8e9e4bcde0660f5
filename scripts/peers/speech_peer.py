"""The speech benchmark's peer: faster-whisper (CTranslate2) on the same
model folder and clips as `sandbot`, greedy, on two CPU threads.

    speech_peer.py MODEL_DIR CLIP.wav...

Prints one JSON line per clip: {"clip", "seconds" (median of three), "text"}.
Run by `cargo bench -p sandbot --bench speech` from the venv that
`scripts/peers/install.sh` makes.
"""

import json
import statistics
import sys
import time

from faster_whisper import WhisperModel


def main() -> None:
    model_dir, clips = sys.argv[1], sys.argv[2:]
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    options = dict(
        language="en",
        beam_size=1,
        best_of=1,
        temperature=0.0,
        without_timestamps=True,
        condition_on_previous_text=False,
        vad_filter=False,
    )

    def transcribe(clip: str) -> str:
        segments, _ = model.transcribe(clip, **options)
        return " ".join(s.text.strip() for s in segments)

    transcribe(clips[0])  # warm-up, as sandbot's model is loaded first
    for clip in clips:
        times, text = [], ""
        for _ in range(3):
            started = time.perf_counter()
            text = transcribe(clip)
            times.append(time.perf_counter() - started)
        print(json.dumps({"clip": clip, "seconds": statistics.median(times), "text": text}), flush=True)


if __name__ == "__main__":
    main()
