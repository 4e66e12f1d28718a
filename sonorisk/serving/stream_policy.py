"""Which live URLs the service opens: a stream request must not make it a network tool.

FFmpeg opens far more than video streams: ``tcp://HOST:PORT?listen=1`` made the
server listen on a port, and ``tcp://HOST:PORT`` let a client probe any host
and port (refused and silent ports answer differently). So a stream URL must:

- use a scheme the operator allows (``streams.allowed_schemes``: rtsp and
  rtsps by default; rtmp, srt, udp and tcp only by config);
- name a host, and one the operator allows when ``streams.allowed_hosts`` is
  set (exact names, ``.example.org`` for a domain and its subdomains, IP
  addresses or CIDR networks; names are not resolved, so a name matches a
  name entry only);
- carry no ``listen`` option (FFmpeg would serve instead of fetch);
- ask for an RTSP transport FFmpeg knows (``udp`` or ``tcp``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

KNOWN_SCHEMES = ("rtsp", "rtsps", "rtmp", "srt", "udp", "tcp")
TRANSPORTS = ("udp", "tcp")


class StreamRefused(ValueError):
    """The URL is not one this service opens (the message says why)."""


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in allowed:
        entry = entry.strip().lower()
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a name entry never matches an address
        elif entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def check_stream_url(
    url: str, transport: str | None, allowed_schemes: Sequence[str], allowed_hosts: Sequence[str]
) -> None:
    """Raise :class:`StreamRefused` naming what is wrong with a stream request."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError as exc:
        raise StreamRefused(f"not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in allowed_schemes:
        raise StreamRefused(
            f"scheme {scheme or '(none)'!r} is not allowed here (allowed: "
            f"{', '.join(allowed_schemes)}; streams.allowed_schemes); "
            "upload files to /v1/jobs"
        )
    if not host:
        raise StreamRefused("the URL names no host")
    if allowed_hosts and not _host_allowed(host, allowed_hosts):
        raise StreamRefused(f"host {host!r} is not in streams.allowed_hosts")
    options = {k.lower() for k in parse_qs(parts.query, keep_blank_values=True)}
    if "listen" in options:
        raise StreamRefused(
            "the 'listen' option would make the server accept connections; "
            "a stream URL must point at a source to fetch"
        )
    if transport is not None and transport not in TRANSPORTS:
        raise StreamRefused(
            f"rtsp_transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}"
        )
