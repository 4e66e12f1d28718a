"""Install a bundle into the user model directory: from a folder, an archive
(``.tar.gz``/``.tgz``/``.tar``/``.zip`` holding one bundle folder), or an
``https://`` URL of such an archive with its sha256.

Nothing lands in the model directory until it is checked: a download's sha256
before it is unpacked; every archive member's name (no absolute paths, no
``..``, no links or devices) before anything is written; every file of the
bundle against its ``metadata.json``; then the copy is moved into place
(``<root>/<name>/<version>/``) in one rename and verified again. Plain
``http://`` is refused; a same name and version already installed is kept
unless ``force``.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from sonorisk import __version__
from sonorisk.errors import InputError
from sonorisk.models.bundle import METADATA, sha256_file, verify_bundle
from sonorisk.models.store import Located, user_model_dir

MAX_BYTES = 8 * 1024**3  # a download or an unpacked archive larger than this is refused
CHUNK = 1 << 20


class InstallError(InputError):
    """A bundle could not be installed; nothing was installed."""


def _check_sha256(value: str | None, source: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InstallError(source, f"--sha256 must be 64 hex digits, got {value!r}")
    return value


def download(
    url: str, dest: Path, sha256: str, *, cafile: str | None = None, timeout_s: float = 60.0
) -> Path:
    """Fetch ``url`` (https only) to ``dest``, refusing it unless its sha256 matches."""
    context = ssl.create_default_context(cafile=cafile)  # honours SSL_CERT_FILE too
    request = urllib.request.Request(url, headers={"User-Agent": f"sonorisk/{__version__}"})
    digest = hashlib.sha256()
    size = 0
    try:
        with (
            urllib.request.urlopen(request, context=context, timeout=timeout_s) as response,
            dest.open("wb") as fh,
        ):
            final = response.geturl()
            if not final.startswith("https://"):
                raise InstallError(url, f"redirected to {final}: only https is accepted")
            for chunk in iter(lambda: response.read(CHUNK), b""):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise InstallError(url, f"download exceeds {MAX_BYTES} bytes: refused")
                digest.update(chunk)
                fh.write(chunk)
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        dest.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise InstallError(url, f"download failed ({reason}); nothing installed") from exc
    found = digest.hexdigest()
    if found != sha256:
        dest.unlink(missing_ok=True)
        raise InstallError(
            url, f"sha256 of the download is {found}, expected {sha256}: refused, nothing installed"
        )
    return dest


def _safe_name(name: str, archive: Path) -> PurePosixPath:
    pure = PurePosixPath(name)
    if (
        not name
        or pure.is_absolute()
        or ".." in pure.parts
        or "\\" in name
        or (pure.parts and ":" in pure.parts[0])
    ):
        raise InstallError(
            archive,
            f"unsafe archive member {name!r} (absolute path or '..' "
            "would write outside the bundle): refused, nothing "
            "installed",
        )
    return pure


def _copy_stream(src: IO[bytes], target: Path, budget: list[int], archive: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise InstallError(
                    archive, f"archive unpacks to more than {MAX_BYTES} bytes: refused"
                )
            out.write(chunk)


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a .zip or a (compressed) tar into ``dest`` after checking every member."""
    budget = [MAX_BYTES]
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _safe_name(info.filename, archive)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise InstallError(
                        archive,
                        f"archive member {info.filename!r} is a link: refused, nothing installed",
                    )
            for info in infos:
                if info.is_dir():
                    continue
                with zf.open(info) as src:
                    _copy_stream(src, dest / _safe_name(info.filename, archive), budget, archive)
        return dest
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            for member in members:
                _safe_name(member.name, archive)
                if not (member.isfile() or member.isdir()):
                    raise InstallError(
                        archive,
                        f"archive member {member.name!r} is a link or "
                        "special file: refused, nothing installed",
                    )
            for member in members:
                if member.isdir():
                    continue
                extracted = tf.extractfile(member)
                if extracted is None:
                    continue
                with extracted:
                    _copy_stream(
                        extracted, dest / _safe_name(member.name, archive), budget, archive
                    )
        return dest
    raise InstallError(
        archive, "not a bundle folder nor a bundle archive (.tar.gz, .tgz, .tar or .zip)"
    )


def find_bundle_folder(root: Path, source: str | Path) -> Path:
    """The one folder under ``root`` holding ``metadata.json`` (the shallowest)."""
    found = sorted(root.rglob(METADATA), key=lambda p: len(p.relative_to(root).parts))
    if not found:
        raise InstallError(source, f"holds no model bundle (no {METADATA})")
    depth = len(found[0].relative_to(root).parts)
    top = [p for p in found if len(p.relative_to(root).parts) == depth]
    if len(top) > 1:
        raise InstallError(
            source,
            f"holds {len(top)} bundles "
            f"({', '.join(str(p.parent.relative_to(root)) for p in top)}"
            "): install one at a time",
        )
    return found[0].parent


def install_bundle(
    source: str | Path,
    *,
    sha256: str | None = None,
    cafile: str | None = None,
    force: bool = False,
    root: Path | None = None,
) -> Located:
    """Install the bundle at ``source`` (folder, archive or https URL) into ``root``
    (default: the user model directory); returns where it now lives."""
    text = str(source)
    sha256 = _check_sha256(sha256, text)
    root = Path(root) if root is not None else user_model_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=root))
    try:
        folder = _fetch(text, sha256, cafile, staging)
        report = verify_bundle(folder)
        report.raise_for_problems()
        bundle = report.bundle
        target = root / bundle.name / bundle.version
        if target.exists() and not force:
            raise InstallError(
                text,
                f"{bundle.name} {bundle.version} is already installed "
                f"at {target} (--force replaces it)",
            )
        copy = staging / "bundle"
        for name in [*bundle.files, METADATA]:
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, copy / name)
        verify_bundle(copy).raise_for_problems()
        target.parent.mkdir(parents=True, exist_ok=True)
        old = staging / "replaced"
        if target.exists():
            target.rename(old)
        try:
            copy.rename(target)
        except OSError:
            if old.exists():
                old.rename(target)  # put the installed one back
            raise
        final = verify_bundle(target)
        final.raise_for_problems()
        return Located(final.bundle, "installed")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(text: str, sha256: str | None, cafile: str | None, staging: Path) -> Path:
    """The bundle folder ``text`` names, downloaded and unpacked under ``staging``."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else None
    if scheme is not None:
        if scheme != "https":
            raise InstallError(
                text, f"{scheme}:// is refused: bundles download over https:// only (with --sha256)"
            )
        if sha256 is None:
            raise InstallError(
                text,
                "an https URL needs --sha256 HEX (the archive's "
                "sha256, from whoever publishes the bundle)",
            )
        archive = download(text, staging / "download", sha256, cafile=cafile)
        return find_bundle_folder(unpack(archive, staging / "unpacked"), text)
    path = Path(text).expanduser()
    if path.is_dir():
        if sha256 is not None:
            raise InstallError(
                text,
                "--sha256 checks an archive or a download, not a folder "
                "(the folder's files are checked against its "
                "metadata.json)",
            )
        return find_bundle_folder(path, text)
    if not path.is_file():
        raise InstallError(text, "no such bundle folder, archive or URL")
    if sha256 is not None and sha256_file(path) != sha256:
        raise InstallError(
            text,
            f"sha256 of the archive is {sha256_file(path)}, expected "
            f"{sha256}: refused, nothing installed",
        )
    return find_bundle_folder(unpack(path, staging / "unpacked"), text)
