"""Greedy CTC decoding and the error rates of a speech run.

* greedy decoding: the arg-max token of every valid output frame, repeats merged, then blanks dropped
  (Graves et al., ICML 2006, best-path decoding);
* ``cer``: character error rate, ``(S + D + I) / N`` over the characters of all reference transcripts
  (Levenshtein alignment of each hypothesis to its reference, counts summed over the test set) in percent;
* ``wer``: the same over space-separated words. Both from jiwer (the ``speech`` extra).
"""
from __future__ import annotations

import torch

from nascli.data.speech.batch import BLANK, CTCOutput
from nascli.data.speech.deps import require


def greedy_decode(output: CTCOutput) -> list[list[int]]:
    """Best-path token ids of each utterance of ``output`` (repeats merged, blanks removed)."""
    best = output.log_probs.argmax(-1).cpu()
    lengths = output.lengths.cpu().tolist()
    out = []
    for b, n in enumerate(lengths):
        path = best[b, : int(n)]
        keep = torch.ones_like(path, dtype=torch.bool)
        keep[1:] = path[1:] != path[:-1]
        out.append([int(t) for t in path[keep & (path != BLANK)]])
    return out


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """``cer`` and ``wer`` in percent over the whole set (module docstring)."""
    jiwer = require("jiwer", "CER/WER (task=speech_recognition)")
    if not references:
        return {"cer": float("nan"), "wer": float("nan")}
    # jiwer refuses an empty reference: utterances without reference text are left out
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return {"cer": 100.0 * float(jiwer.cer(refs, hyps)), "wer": 100.0 * float(jiwer.wer(refs, hyps))}
