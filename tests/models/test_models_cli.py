"""``sonorisk models``: list, show, install (folder, archives, a real https server on
127.0.0.1 with a self-signed certificate), remove."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import io
import ipaddress
import json
import ssl
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonorisk.cli import main
from sonorisk.models import store
from sonorisk.models.bundle import METADATA, sha256_file

from .conftest import copy_bundle  # noqa: TID252


def _installed(user: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(user)) for p in user.glob(f"*/*/{METADATA}"))


def _tar(bundle: Path, out: Path, arcname: str = "tiny-1.0.0") -> Path:
    with tarfile.open(out, "w:gz") as tf:
        tf.add(bundle, arcname=arcname)
    return out


def test_install_from_a_folder_then_list_show_and_remove(
    exported: Path, tmp_path: Path, isolated_model_dirs: Path, capsys
):
    user = isolated_model_dirs
    assert main(["models", "list"]) == 0
    assert "no model bundles" in capsys.readouterr().out
    assert main(["models", "install", str(exported)]) == 0
    assert "installed tiny 1.0.0" in capsys.readouterr().out
    assert _installed(user) == ["tiny/1.0.0"]
    assert (user / "tiny" / "1.0.0" / METADATA).read_bytes() == (exported / METADATA).read_bytes()

    copy_bundle(exported, store.bundled_dir(), "shipped", "2.0")
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny 1.0.0  installed" in out and "shipped 2.0 (default)  bundled" in out
    assert "detector_ap50 0.812 [0.750-0.860]" in out and " MB " in out
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {(b["name"], b["where"]) for b in listed["bundles"]} == {
        ("tiny", "installed"),
        ("shipped", "bundled"),
    }
    assert listed["default"] == "shipped"

    assert main(["models", "show", "tiny"]) == 0
    out = capsys.readouterr().out
    assert '"name": "tiny"' in out and f"model card: {user / 'tiny' / '1.0.0' / 'README.md'}" in out
    assert main(["models", "verify", "tiny"]) == 0
    assert main(["models", "verify"]) == 0  # the default bundle
    assert "shipped 2.0" in capsys.readouterr().out

    # Same name and version again: refused unless --force.
    assert main(["models", "install", str(exported)]) == 2
    assert "already installed" in capsys.readouterr().err
    assert main(["models", "install", str(exported), "--force"]) == 0
    capsys.readouterr()

    assert main(["models", "remove", "shipped"]) == 2
    assert "bundled with sonorisk" in capsys.readouterr().err
    assert main(["models", "remove", "tiny@1.0.0"]) == 0
    assert _installed(user) == [] and not (user / "tiny").exists()
    assert main(["models", "remove", "tiny"]) == 2
    assert "no installed bundle" in capsys.readouterr().err


def test_install_refuses_a_damaged_bundle(
    exported: Path, tmp_path: Path, isolated_model_dirs: Path, capsys
):
    bundle = copy_bundle(exported, tmp_path / "b")
    data = bytearray((bundle / "detector.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (bundle / "detector.safetensors").write_bytes(bytes(data))
    assert main(["models", "install", str(bundle)]) == 2
    assert "detector.safetensors: sha256" in capsys.readouterr().err
    assert _installed(isolated_model_dirs) == []


def test_install_from_tar_gz_and_zip_archives(
    exported: Path, tmp_path: Path, isolated_model_dirs: Path
):
    user = isolated_model_dirs
    archive = _tar(exported, tmp_path / "tiny.tar.gz")
    assert main(["models", "install", str(archive), "--sha256", sha256_file(archive)]) == 0
    assert _installed(user) == ["tiny/1.0.0"]
    assert main(["models", "remove", "tiny"]) == 0

    zipped = tmp_path / "tiny.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for path in sorted(exported.rglob("*")):
            zf.write(path, f"bundles/tiny/1.0.0/{path.relative_to(exported)}")
    assert main(["models", "install", str(zipped)]) == 0
    assert _installed(user) == ["tiny/1.0.0"]
    # Nothing of the unpacking is left behind.
    assert sorted(p.name for p in user.iterdir()) == ["tiny"]


def test_archives_with_unsafe_members_are_refused(
    exported: Path, tmp_path: Path, isolated_model_dirs: Path, capsys
):
    escape = tmp_path / "escape.tar.gz"
    with tarfile.open(escape, "w:gz") as tf:
        tf.add(exported, arcname="tiny")
        payload = b"owned"
        info = tarfile.TarInfo("../../outside.txt")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    assert main(["models", "install", str(escape)]) == 2
    assert "unsafe archive member '../../outside.txt'" in capsys.readouterr().err

    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tf:
        tf.add(exported, arcname="tiny")
        info = tarfile.TarInfo("tiny/evil")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    assert main(["models", "install", str(link)]) == 2
    assert "is a link" in capsys.readouterr().err

    absolute = tmp_path / "abs.zip"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr("/tmp/evil.txt", "x")
    assert main(["models", "install", str(absolute)]) == 2
    assert "unsafe archive member" in capsys.readouterr().err

    user = isolated_model_dirs
    assert _installed(user) == [] and [p.name for p in user.iterdir()] == []
    assert not (tmp_path / "outside.txt").exists()


# --------------------------------------------------------------- https install
def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A real https server on 127.0.0.1 serving ``www/``; yields (base URL, folder, CA)."""
    www = tmp_path / "www"
    www.mkdir()
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www))
    )
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", www, cert
    finally:
        server.shutdown()
        server.server_close()


def test_install_from_an_https_url_checks_the_sha256_first(
    exported: Path, https_server, isolated_model_dirs: Path, monkeypatch, capsys
):
    base, www, ca = https_server
    user = isolated_model_dirs
    archive = _tar(exported, www / "tiny-1.0.0.tar.gz")
    digest = sha256_file(archive)
    url = f"{base}/tiny-1.0.0.tar.gz"

    # The certificate is not trusted by default: refused.
    assert main(["models", "install", url, "--sha256", digest]) == 2
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    # A wrong sha256: refused before unpacking, nothing installed.
    assert main(["models", "install", url, "--sha256", "0" * 64, "--cafile", str(ca)]) == 2
    err = capsys.readouterr().err
    assert f"sha256 of the download is {digest}" in err and "nothing installed" in err
    assert _installed(user) == [] and [p.name for p in user.iterdir()] == []
    # No sha256 at all: refused.
    assert main(["models", "install", url, "--cafile", str(ca)]) == 2
    assert "needs --sha256" in capsys.readouterr().err
    # Plain http: refused whatever the hash.
    assert main(["models", "install", url.replace("https://", "http://"), "--sha256", digest]) == 2
    assert "http:// is refused" in capsys.readouterr().err

    assert main(["models", "install", url, "--sha256", digest, "--cafile", str(ca)]) == 0
    assert _installed(user) == ["tiny/1.0.0"]
    assert main(["models", "verify", "tiny"]) == 0
    # The CA from the environment works too (SSL_CERT_FILE, as OpenSSL reads it).
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert main(["models", "install", url, "--sha256", digest.upper(), "--force"]) == 0
    assert _installed(user) == ["tiny/1.0.0"]
    # A missing file on the server: said, nothing changed.
    assert main(["models", "install", f"{base}/none.tar.gz", "--sha256", digest]) == 2
    assert "download failed" in capsys.readouterr().err
