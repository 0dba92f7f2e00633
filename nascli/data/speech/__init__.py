"""Speech recognition data (``task=speech_recognition``): batch types, readers, features, augmentation.

Importing this package imports no optional dependency; the readers register themselves in
:data:`~nascli.data.speech.reader.SPEECH_DATASETS` when :func:`load_readers` runs.
"""
from nascli.data.speech.batch import BLANK, CTCOutput, CTCTargets, PaddedFeatures


def load_readers():
    """The speech dataset registry with every reader registered."""
    import nascli.data.speech.folders  # noqa: F401
    import nascli.data.speech.spoken_digits  # noqa: F401
    from nascli.data.speech.reader import SPEECH_DATASETS

    return SPEECH_DATASETS


__all__ = ["BLANK", "CTCOutput", "CTCTargets", "PaddedFeatures", "load_readers"]
