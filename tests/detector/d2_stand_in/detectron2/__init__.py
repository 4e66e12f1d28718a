"""A stand-in for detectron2, for tests only (tests/detector/test_detectron2.py).

detectron2 is not on PyPI and does not build on this machine, so the backend's
real code path (``sonorisk.detector.detectron2_backend``) is exercised against
this package instead: it has the few names that backend uses, with detectron2's
signatures and behaviour at that surface (``get_cfg`` and
``CfgNode.merge_from_file``, ``DefaultPredictor`` returning ``Instances`` with
``pred_boxes``/``scores``/``pred_classes`` in source pixels). Its "model" is a
bright-spot finder whose one weight is the score it gives, so loading weights
and every step after the model can be checked. Nothing else of detectron2 is here.
"""
