"""Readers of speech corpora in their released folder layouts (docs/SPEECH.md):

* ``aishell1``: ``<root>/data_aishell/wav/<subset>/<speaker>/<utt>.wav`` (the per-speaker ``.tar.gz`` of the
  release extracted in place) and ``<root>/data_aishell/transcript/aishell_transcript_v0.8.txt``;
  characters are the tokens, the word-segmenting spaces removed; a wav without a transcript line is skipped
  (as the AISHELL-1 recipes do);
* ``librispeech``: ``<root>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` and
  ``<speaker>-<chapter>.trans.txt``; characters incl. the apostrophe and the space between words;
* ``kaldi_dir``: a Kaldi data folder ``<root>/{wav.scp,text}`` (and ``utt2spk``, optional) for training and
  ``test_root`` for testing; ``wav.scp`` entries must be plain paths (relative ones from the folder), a
  pipe (``cmd |``) or an archive offset is refused in one line.
"""
from __future__ import annotations

from pathlib import Path

from nascli.data.download import cache_dir, missing_data_error, search_dirs
from nascli.data.speech.reader import SPEECH_DATASETS, SpeechReader, Utterance, read_transcripts
from nascli.errors import DataMissingError, NasError


def _base(reader: SpeechReader, marker: str, files: list[str], note: str = "") -> Path:
    """The first folder of ``dataset.root`` / the cache that holds ``marker``, else one missing-data line."""
    dirs = search_dirs(reader.opt("root"), cache_dir(reader.name))
    for d in dirs:
        if (d / marker).exists():
            return d
    raise missing_data_error(reader.name, files, dirs, note)


@SPEECH_DATASETS.register("aishell1")
class Aishell1(SpeechReader):
    name = "aishell1"
    TRANSCRIPT = "data_aishell/transcript/aishell_transcript_v0.8.txt"

    def utterances(self, part: str) -> list[Utterance]:
        subset = str(self.opt(f"{part}_subset", part))
        wav_dir = f"data_aishell/wav/{subset}"
        files = [self.TRANSCRIPT, f"{wav_dir}/<speaker>/<utt>.wav"]
        base = _base(self, self.TRANSCRIPT, files, "extract data_aishell/wav/*.tar.gz in place")
        if not (base / wav_dir).is_dir():
            raise missing_data_error(self.name, files[1:], [base], "extract data_aishell/wav/*.tar.gz in place")
        text = read_transcripts(base / self.TRANSCRIPT, strip_spaces=True)
        wavs = sorted((base / wav_dir).glob("*/*.wav"), key=lambda p: p.stem)
        return [Utterance(p.stem, p, text[p.stem], p.parent.name) for p in wavs if p.stem in text]


@SPEECH_DATASETS.register("librispeech")
class LibriSpeech(SpeechReader):
    name = "librispeech"

    def _subsets(self, part: str) -> list[str]:
        value = self.opt(f"{part}_subsets", ["train-clean-100"] if part == "train" else ["test-clean"])
        return [str(v) for v in ([value] if isinstance(value, str) else value)]

    def utterances(self, part: str) -> list[Utterance]:
        out: list[Utterance] = []
        for subset in self._subsets(part):
            folder = f"LibriSpeech/{subset}"
            files = [f"{folder}/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt",
                     f"{folder}/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac"]
            base = _base(self, folder, files)
            for trans in sorted((base / folder).glob("*/*/*.trans.txt")):
                for utt, text in read_transcripts(trans, strip_spaces=False).items():
                    audio = trans.parent / f"{utt}.flac"
                    if not audio.exists():
                        raise missing_data_error(self.name, [audio.name], [trans.parent], f"listed in {trans.name}")
                    out.append(Utterance(utt, audio, text, utt.split("-")[0]))
        return sorted(out, key=lambda u: u.id)


@SPEECH_DATASETS.register("kaldi_dir")
class KaldiDir(SpeechReader):
    name = "kaldi_dir"

    def utterances(self, part: str) -> list[Utterance]:
        key = "root" if part == "train" else "test_root"
        root = self.opt(key)
        if not root:
            raise DataMissingError(f"kaldi_dir: dataset.{key} is not set; pass dataset.{key}=<Kaldi data folder "
                                   f"with wav.scp and text>")
        folder = Path(str(root)).expanduser()
        missing = [f for f in ("wav.scp", "text") if not (folder / f).is_file()]
        if missing:
            raise missing_data_error(self.name, missing, [folder], f"dataset.{key} must be a Kaldi data folder")
        text = read_transcripts(folder / "text", strip_spaces=bool(self.opt("strip_spaces", False)))
        speakers = read_transcripts(folder / "utt2spk", False) if (folder / "utt2spk").is_file() else {}
        out = []
        for utt, entry in sorted(read_transcripts(folder / "wav.scp", strip_spaces=False).items()):
            if entry.endswith("|") or ".ark:" in entry:
                raise NasError(f"kaldi_dir: {folder / 'wav.scp'} entry {utt} is {entry!r}; only plain audio paths "
                               f"are read (write the audio to .wav/.flac files, e.g. with wav-copy)")
            if utt not in text:
                continue
            path = Path(entry)
            path = path if path.is_absolute() else folder / path
            if not path.exists():
                raise missing_data_error(self.name, [str(path)], [folder], f"listed in wav.scp for {utt}")
            out.append(Utterance(utt, path, text[utt], speakers.get(utt, "")))
        return out
