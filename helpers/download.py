"""Download of the official CINIC-10 archive: progress bar, size and md5 check, atomic write.

The archive is streamed into ``<dest>.part-<random>`` next to its final place and renamed
only after its size and md5 have been checked, so an interrupted or corrupted download never
leaves a file that a later call would mistake for the real archive.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

__all__ = ["download_file", "md5sum", "sha256sum", "DownloadError"]

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The archive could not be fetched or failed its integrity check."""


def _filesum(path, algorithm: str, chunk: int = _CHUNK) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def md5sum(path: str | os.PathLike) -> str:
    """Return the hex md5 of the file at ``path`` (read in 1 MiB chunks)."""
    return _filesum(path, "md5")


def sha256sum(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of the file at ``path`` (read in 1 MiB chunks)."""
    return _filesum(path, "sha256")


def download_file(url: str, dest: str | os.PathLike, md5: str | None = None,
                  progress: bool = True, timeout: float = 60.0, sha256: str | None = None) -> Path:
    """Fetch ``url`` to ``dest`` atomically and return ``dest`` as a :class:`Path`.

    Args:
        url: address to fetch (``http(s)://`` or ``file://``).
        dest: final file path; its folder is created if needed.
        md5: expected hex md5; ``None`` skips the checksum (the size is still checked
            against the server's ``Content-Length`` when it sends one).
        sha256: expected hex SHA-256, checked like ``md5`` (both may be given).
        progress: show a tqdm progress bar in bytes.
        timeout: socket timeout in seconds.

    Raises:
        DownloadError: network failure, truncated transfer or checksum mismatch. The partial
            file is deleted in every case.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".part-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        wanted = {name: value for name, value in (("md5", md5), ("sha256", sha256)) if value is not None}
        digests = {name: hashlib.new(name) for name in wanted}
        received = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
                length = resp.headers.get("Content-Length")
                expected = int(length) if length else None
                with tqdm(total=expected, unit="B", unit_scale=True, desc=dest.name,
                          disable=not progress) as bar:
                    for block in iter(lambda: resp.read(_CHUNK), b""):
                        out.write(block)
                        for digest in digests.values():
                            digest.update(block)
                        received += len(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError) as exc:
            raise DownloadError(f"could not download {url}: {exc}") from exc
        if expected is not None and received != expected:
            raise DownloadError(
                f"download of {url} was cut short: got {received} of {expected} bytes; "
                "run again to retry")
        for name, want in wanted.items():  # only the digests asked for are computed
            got = digests[name].hexdigest()
            if got != want.lower():
                label = "SHA-256" if name == "sha256" else name
                raise DownloadError(f"checksum mismatch for {url}: {label} {got}, expected {want}; "
                                    "the file was deleted, run again to retry")
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()
