"""Stream URLs the service opens, and those it refuses (issue 15's network-tool probes)."""

from __future__ import annotations

import pytest

from sonorisk.errors import ConfigError
from sonorisk.serving.config import ServeConfig
from sonorisk.serving.stream_policy import StreamRefused, check_stream_url

DEFAULT = ["rtsp", "rtsps"]


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://10.0.0.5:8554/probe",
        "rtsps://scanner.ward.example/x",
        "RTSP://Scanner.Ward.Example:554/live",
    ],
)
def test_rtsp_sources_are_opened(url: str) -> None:
    check_stream_url(url, None, DEFAULT, [])
    check_stream_url(url, "tcp", DEFAULT, [])


@pytest.mark.parametrize(
    ("url", "transport", "words"),
    [
        ("tcp://127.0.0.1:18799?listen=1", None, "scheme 'tcp'"),
        ("tcp://internal-db:5432", None, "scheme 'tcp'"),
        ("udp://0.0.0.0:9999", None, "scheme 'udp'"),
        ("file:///etc/passwd", None, "scheme 'file'"),
        ("/etc/passwd", None, r"scheme '\(none\)'"),
        ("rtsp:///nohost", None, "no host"),
        ("rtsp://10.0.0.5/x?listen=1", None, "listen"),
        ("rtsp://10.0.0.5/x", "http", "rtsp_transport"),
    ],
)
def test_hostile_urls_are_refused_with_the_reason(
    url: str, transport: str | None, words: str
) -> None:
    with pytest.raises(StreamRefused, match=words):
        check_stream_url(url, transport, DEFAULT, [])


def test_an_operator_may_allow_more_schemes_but_never_listen() -> None:
    check_stream_url("srt://10.0.0.5:9000", None, [*DEFAULT, "srt", "tcp"], [])
    with pytest.raises(StreamRefused, match="listen"):
        check_stream_url("tcp://0.0.0.0:18799?listen=1", None, [*DEFAULT, "tcp"], [])


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("10.1.2.3", True),
        ("10.2.0.1", False),
        ("scanner1.ward.example", True),
        ("ward.example", True),
        ("evilward.example", False),
        ("pacs.other", False),
        ("192.168.7.7", True),
        ("[::1]", False),
    ],
)
def test_allowed_hosts(host: str, ok: bool) -> None:
    allowed = ["10.1.0.0/16", ".ward.example", "192.168.7.7"]
    url = f"rtsp://{host}:554/live"
    if ok:
        check_stream_url(url, None, DEFAULT, allowed)
    else:
        with pytest.raises(StreamRefused, match="allowed_hosts"):
            check_stream_url(url, None, DEFAULT, allowed)


def test_config_validates_schemes_transport_and_give_up() -> None:
    config = ServeConfig()
    assert config.streams.give_up_after_s == 300.0  # dead streams free their slot
    config.validate()
    config.streams.allowed_schemes = ["rtsp", "gopher"]
    with pytest.raises(ConfigError, match="allowed_schemes"):
        config.validate()
    config = ServeConfig()
    config.streams.rtsp_transport = "http"
    with pytest.raises(ConfigError, match="rtsp_transport"):
        config.validate()
    config = ServeConfig()
    config.streams.give_up_after_s = 0
    with pytest.raises(ConfigError, match="give_up_after_s"):
        config.validate()
