"""``dataset=spoken_digits``: the offline default of ``task=speech_recognition``, real synthetic speech made at
run time by the espeak-ng synthesiser (a system package: ``apt-get install espeak-ng``).

Each utterance is a sequence of ``min_digits``..``max_digits`` digits read as English words (``zero``..``nine``;
0 is read ``oh`` or ``zero`` at random), spoken by one espeak-ng voice (``<language>+<variant>``, e.g.
``en-us+f2``) at a random rate (words per minute in ``rates``) and pitch (0-99 in ``pitches``). Every choice is
drawn from ``random.Random(seed)``, so a seed fixes the corpus. ``per_voice`` utterances per voice; the
``train_voices`` make the training part and the ``test_voices`` (never the same voice) the test part, so the
test speakers are unseen in training.

The WAV files (16-bit mono at espeak-ng's 22,050 Hz) and a ``manifest.json`` are written once under
``<root or ~/.cache/nascli/spoken_digits>/<hash of the options>/`` (into a temporary folder renamed when
complete); later runs read the files and never call the synthesiser.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nascli.data.download import cache_dir
from nascli.data.speech.deps import espeak_ng
from nascli.data.speech.reader import SPEECH_DATASETS, SpeechReader, Utterance
from nascli.errors import NasError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MANIFEST = "manifest.json"
#: the options that define the corpus (their hash names the cache folder)
SPEC_KEYS = ("train_voices", "test_voices", "per_voice", "min_digits", "max_digits", "rates", "pitches", "seed")


def digit_words(digits: list[int], rng: random.Random) -> str:
    """The words of ``digits``; each 0 is ``oh`` or ``zero`` with probability 1/2."""
    return " ".join(rng.choice(("oh", "zero")) if d == 0 else WORDS[d] for d in digits)


def corpus_plan(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every utterance to synthesise: id, part, voice, rate, pitch, text (deterministic in ``spec``)."""
    rng = random.Random(int(spec["seed"]))
    lo, hi = int(spec["min_digits"]), int(spec["max_digits"])
    if not 1 <= lo <= hi:
        raise NasError(f"dataset.min_digits={lo}, max_digits={hi}: need 1 <= min_digits <= max_digits")
    overlap = set(spec["train_voices"]) & set(spec["test_voices"])
    if overlap:
        raise NasError(f"dataset.test_voices must be unseen in training; in both lists: {', '.join(sorted(overlap))}")
    plan = []
    for part in ("train", "test"):
        for voice in spec[f"{part}_voices"]:
            tag = voice.replace("+", "_")
            for k in range(int(spec["per_voice"])):
                digits = [rng.randrange(10) for _ in range(rng.randint(lo, hi))]
                plan.append({"id": f"{tag}-{k:03d}", "part": part, "voice": voice,
                             "rate": rng.randint(*spec["rates"]), "pitch": rng.randint(*spec["pitches"]),
                             "text": digit_words(digits, rng)})
    return plan


def synthesise(plan: list[dict[str, Any]], folder: Path, workers: int = 4) -> None:
    """One WAV per planned utterance in ``folder`` (espeak-ng processes, ``workers`` at a time)."""
    program = espeak_ng()

    def one(u: dict[str, Any]) -> None:
        cmd = [program, "-v", u["voice"], "-s", str(u["rate"]), "-p", str(u["pitch"]),
               "-w", str(folder / f"{u['id']}.wav"), u["text"]]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not (folder / f"{u['id']}.wav").exists():
            raise NasError(f"espeak-ng failed for voice {u['voice']}: {' '.join(done.stderr.split()) or done.returncode}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, plan))


@SPEECH_DATASETS.register("spoken_digits")
class SpokenDigits(SpeechReader):
    name = "spoken_digits"

    def spec(self) -> dict[str, Any]:
        from nascli.plain import plain

        return {k: plain(self.opt(k)) for k in SPEC_KEYS}

    def folder(self) -> Path:
        spec = self.spec()
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        root = self.opt("root")
        return (Path(str(root)).expanduser() if root else cache_dir(self.name)) / digest

    def manifest(self) -> list[dict[str, Any]]:
        """The corpus's manifest, synthesising it first when its folder is not complete."""
        folder = self.folder()
        if not (folder / MANIFEST).is_file():
            plan = corpus_plan(self.spec())
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
            try:
                synthesise(plan, tmp)
                (tmp / MANIFEST).write_text(json.dumps({"spec": self.spec(), "utterances": plan}, indent=1))
                if not folder.exists():  # another process may have finished the same corpus first
                    os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return json.loads((folder / MANIFEST).read_text())["utterances"]

    def vocabulary(self):
        """The characters of the planned training transcripts (no audio needed)."""
        from nascli.data.speech.vocab import Vocabulary

        plan = corpus_plan(self.spec())
        train = sorted((u for u in plan if u["part"] == "train"), key=lambda u: u["id"])
        limit = self.opt("max_train")
        return Vocabulary.from_texts(u["text"] for u in (train[: int(limit)] if limit is not None else train))

    def utterances(self, part: str) -> list[Utterance]:
        folder = self.folder()
        return sorted((Utterance(u["id"], folder / f"{u['id']}.wav", u["text"], u["voice"])
                       for u in self.manifest() if u["part"] == part), key=lambda u: u.id)
