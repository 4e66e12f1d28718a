"""sonorisk.data: the dataset format, splits, still import and sweep synthesis.

Light imports only here (the loader and records); synthesis lives in
``sonorisk.data.synth`` and is imported where used.
"""

from sonorisk.data.dataset import VideoDataset, load_dataset, validate_dataset
from sonorisk.data.format import DatasetWriter, FrameAnnotation, VideoRecord

__all__ = [
    "DatasetWriter",
    "FrameAnnotation",
    "VideoDataset",
    "VideoRecord",
    "load_dataset",
    "validate_dataset",
]
