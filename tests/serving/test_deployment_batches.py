"""A bad request batched with good ones fails alone, and is answered, not raised.

The deployment class is used as a plain class here (its Serve wrapper and
@serve.batch unwrapped: they need a running replica), given one batch of two
callers' requests as @serve.batch would, with a stand-in model that refuses
tiny frames as the real detector does.
"""

from __future__ import annotations

import asyncio

import numpy as np

from sonorisk.errors import InputError
from sonorisk.serving.deployments import Detector


class TinyRefusingModel:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, images, indices):
        self.calls.append(len(images))
        if any(min(im.shape[:2]) < 16 for im in images):
            raise InputError("frame 0", "frame 1x1 is too small (min side 16 px)")
        return [[("box", i)] for i in indices]


def _detector() -> object:
    cls = Detector.func_or_class
    detector = cls.__new__(cls)
    detector.model, detector.node = TinyRefusingModel(), "node-1"
    detector.model_calls, detector.images = 0, 0
    return detector


def test_one_callers_bad_frames_do_not_fail_the_others_in_its_batch():
    detector = _detector()
    good = [np.zeros((32, 32), np.uint8)] * 2
    bad = [np.zeros((1, 1), np.uint8)]

    batched = Detector.func_or_class._batched.__wrapped__
    ok, refused = asyncio.run(batched(detector, [(good, [3, 4]), (bad, [0])]))
    assert detector.model.calls == [3, 2, 1]  # both callers' frames, refused; then each alone
    assert ok == {"result": [[("box", 3)], [("box", 4)]]}
    assert refused == {"input_error": ["frame 0", "frame 1x1 is too small (min side 16 px)"]}


def test_the_caller_raises_the_input_error_it_was_answered():
    from sonorisk.serving.remote import RemoteDetector

    class Handle:
        class predict:  # noqa: N801 (mirrors a Serve handle's method attribute)
            @staticmethod
            def remote(*args):
                class Response:
                    def result(self, timeout_s):
                        return {"node": "n", "input_error": ["frame 0", "too small"]}

                return Response()

    remote = RemoteDetector(Handle(), {})
    try:
        remote._call("predict", [], [])
    except InputError as exc:
        assert (exc.source, exc.reason) == ("frame 0", "too small")
    else:
        raise AssertionError("no InputError")
