"""The character vocabulary of a speech run: index 0 is the CTC blank, then every character of the training
transcripts in code-point order (deterministic for a given training set). Saved with the run
(``vocab.json``) so ``nas derive`` / ``nas evaluate`` decode with the same table."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nascli.data.speech.batch import BLANK
from nascli.errors import NasError

BLANK_TOKEN = "<blank>"


class Vocabulary:
    """``tokens[0]`` is the blank; ``tokens[i]`` (i >= 1) one character."""

    def __init__(self, tokens: list[str]):
        if not tokens or tokens[BLANK] != BLANK_TOKEN:
            raise NasError(f"a vocabulary starts with the CTC blank {BLANK_TOKEN!r}, got {tokens[:1]!r}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "Vocabulary":
        """Blank, then the distinct characters of ``texts`` sorted by code point."""
        return cls([BLANK_TOKEN, *sorted({ch for text in texts for ch in text})])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``'s characters; a character outside the vocabulary (only possible in a test
        transcript) is dropped from the label sequence, while the reference text keeps it for CER/WER."""
        return [self.index[ch] for ch in text if ch in self.index]

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of ``ids`` (blanks dropped)."""
        return "".join(self.tokens[i] for i in ids if i != BLANK)

    def to_json(self) -> dict[str, Any]:
        return {"blank": BLANK, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Vocabulary":
        return cls(list(data["tokens"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
