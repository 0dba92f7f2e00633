"""Speech recognition data (``task=speech_recognition``): batch types, readers, features, augmentation."""
from nascli.data.speech.batch import BLANK, CTCOutput, CTCTargets, PaddedFeatures

__all__ = ["BLANK", "CTCOutput", "CTCTargets", "PaddedFeatures"]
