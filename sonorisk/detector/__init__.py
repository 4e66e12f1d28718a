"""sonorisk.detector: the lesion detector (Faster R-CNN / RetinaNet + FPN, torchvision;
optional detectron2 backend), its training, evaluation and batched inference.

Heavy imports (torch, torchvision) happen when a submodule is imported.
See docs/detector.md.
"""
