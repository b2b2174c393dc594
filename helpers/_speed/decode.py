"""Reading the CINIC-10 layout (folder or ``.tar.gz``), parallel PNG decoding, array cache.

The official layout is ``{train,valid,test}/<class>/*.png`` with 32x32 RGB images. This
module decodes every image exactly once and stores each split as two ``.npy`` files:
``<split>_X.npy`` (uint8, ``(N, 32, 32, 3)``) and ``<split>_y.npy`` (int64, ``(N,)``), in a
cache folder that is built under a temporary name and renamed only when complete, so a
failure (corrupt image, truncated archive, Ctrl-C) never leaves a half-built cache.
Later loads memory-map the arrays: reloading the full CINIC-10 costs about a second and
only the pages actually read become resident.

Images are ordered by class index, then by file name, so the arrays are identical whether
they came from the folder or the archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..config import CINIC10, CinicConfig

__all__ = ["DatasetError", "build_cache", "load_cache", "cache_key", "decode_png"]

_CHUNK = 1000
_MANIFEST = "manifest.json"
_FORMAT = "cinic10-arrays/1"


class DatasetError(ValueError):
    """The dataset on disk is missing, incomplete or corrupt; the message names the file."""


def decode_png(data: bytes, name: str) -> np.ndarray:
    """Decode one image to a uint8 ``(32, 32, 3)`` array.

    Grayscale and palette images are converted to RGB (CINIC-10's ImageNet part contains a
    few grayscale PNGs); anything that is not 32x32 or cannot be decoded raises
    :class:`DatasetError` naming ``name``.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            size, mode = img.size, img.mode
            if mode in ("L", "P", "LA", "I;16", "I"):
                img = img.convert("RGB")
                mode = "RGB"
            arr = np.asarray(img, dtype=np.uint8) if mode == "RGB" else None
    except Exception as exc:  # PIL raises many types for corrupt files
        raise DatasetError(f"cannot decode image {name}: {exc}") from None
    if size != (32, 32):
        raise DatasetError(f"image {name} is {size[0]}x{size[1]}, expected 32x32")
    if arr is None:
        raise DatasetError(f"image {name} has mode {mode}, expected RGB")
    return arr


def _decode_chunk(items: list[tuple[str, bytes | str]]) -> np.ndarray:
    """Worker: decode ``(name, bytes-or-path)`` pairs into one ``(n, 32, 32, 3)`` array."""
    out = np.empty((len(items), *CINIC10.image_shape), dtype=np.uint8)
    for i, (name, payload) in enumerate(items):
        if isinstance(payload, str):
            with open(payload, "rb") as fh:
                payload = fh.read()
        out[i] = decode_png(payload, name)
    return out


def cache_key(source: Path) -> str:
    """A short key that changes when ``source`` (file or folder) is replaced or modified."""
    st = source.stat()
    text = f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}|{_FORMAT}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _split_class(rel: PurePosixPath, config: CinicConfig) -> tuple[str, int] | None:
    """Map ``<split>/<class>/<file>.png`` to ``(split, class_index)``; ``None`` if not an image."""
    parts = rel.parts
    if len(parts) != 3 or not parts[2].lower().endswith(".png"):
        return None
    folder_to_split = {v: k for k, v in config.splits.items()}
    if parts[0] not in folder_to_split:
        return None
    if parts[1] not in config.classes:
        raise DatasetError(f"unknown class folder {rel.parent} (allowed: {', '.join(config.classes)})")
    return folder_to_split[parts[0]], config.classes.index(parts[1])


def _check_complete(found: dict[str, dict[int, int]], where: Path, config: CinicConfig) -> None:
    for split, folder in config.splits.items():
        if not found.get(split):
            raise DatasetError(f"{where}: missing split folder '{folder}/' (with one folder per class)")
        missing = [config.classes[c] for c in range(config.num_classes) if not found[split].get(c)]
        if missing:
            raise DatasetError(f"{where}: split '{folder}/' has no images for class "
                               f"folder(s) {', '.join(missing)}")


def _list_folder(root: Path, config: CinicConfig):
    """Return ``{split: [(sort_key, name, path)]}`` for an extracted layout."""
    entries: dict[str, list] = {s: [] for s in config.splits}
    found: dict[str, dict[int, int]] = {s: {} for s in config.splits}
    for folder in config.splits.values():
        base = root / folder
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if not path.is_file():
                continue
            rel = PurePosixPath(path.relative_to(root).as_posix())
            sc = _split_class(rel, config)
            if sc is None:
                continue
            split, cls = sc
            entries[split].append(((cls, rel.name), str(rel), str(path)))
            found[split][cls] = found[split].get(cls, 0) + 1
    _check_complete(found, root, config)
    return entries


def _archive_path(name: str) -> PurePosixPath:
    """``split/class/file.png`` of an archive member, without a leading ``./`` or top folder."""
    parts = PurePosixPath(name).parts
    while parts and parts[0] in (".",):
        parts = parts[1:]
    if len(parts) == 4:  # tolerate one leading folder
        parts = parts[1:]
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _iter_archive(archive: Path, config: CinicConfig):
    """Yield ``(split, sort_key, name, bytes)`` for every image in a CINIC-10 archive.

    A leading folder (``CINIC-10/train/...``) is tolerated.
    """
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                rel = _archive_path(member.name)
                sc = _split_class(rel, config)
                if sc is None:
                    continue
                fh = tar.extractfile(member)
                data = fh.read() if fh is not None else b""
                yield sc[0], (sc[1], rel.name), f"{archive.name}:{member.name}", data
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(f"archive {archive} is truncated or corrupt ({exc}); "
                           "delete it and download or copy it again") from None


def _count_archive(archive: Path, config: CinicConfig) -> int | None:
    """Images in a CINIC-10 archive, from its headers alone (for the progress bar's total).

    One extra pass of decompression (seconds, against minutes of decoding); ``None`` when the
    archive cannot be read, which the decoding pass then reports.
    """
    n = 0
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                if member.isfile() and _split_class(_archive_path(member.name), config) is not None:
                    n += 1
    except (tarfile.TarError, EOFError, zlib.error, OSError):
        return None
    return n


def _decode_all(items_by_split, total: int | None, workers: int, desc: str, progress: bool = True):
    """Decode an iterable of ``(split, key, name, payload)`` in parallel.

    Returns ``{split: (X, y)}`` sorted by key.
    """
    chunks: dict[str, list] = {}
    pending: list = []

    def collect(bar, keep: int) -> None:
        # Wait for the oldest chunks so that at most ``keep`` are in flight (bounded memory).
        while len(pending) > keep:
            split, keys, fut = pending.pop(0)
            chunks.setdefault(split, []).append((keys, fut.result()))  # re-raises DatasetError
            bar.update(len(keys))

    with ProcessPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=total, unit="img", desc=desc, disable=not progress) as bar:
        def submit(split: str, buf: list) -> None:
            pending.append((split, [k for k, _, _ in buf],
                            pool.submit(_decode_chunk, [(n, p) for _, n, p in buf])))

        buffers: dict[str, list] = {}
        for split, key, name, payload in items_by_split:
            buf = buffers.setdefault(split, [])
            buf.append((key, name, payload))
            if len(buf) >= _CHUNK:
                submit(split, buf)
                buffers[split] = []
                collect(bar, 4 * workers)
        for split, buf in buffers.items():
            if buf:
                submit(split, buf)
        collect(bar, 0)
    result = {}
    for split, parts in chunks.items():
        keys = [k for ks, _ in parts for k in ks]
        X = np.concatenate([a for _, a in parts])
        order = sorted(range(len(keys)), key=keys.__getitem__)
        result[split] = (X[order], np.array([keys[i][0] for i in order], dtype=np.int64))
    return result


def build_cache(source: Path, cache_dir: Path, config: CinicConfig = CINIC10,
                workers: int | None = None, progress: bool = True) -> Path:
    """Decode ``source`` (extracted folder or archive) into a new cache folder.

    Args:
        source: folder holding ``train/ valid/ test/`` or a ``.tar.gz`` archive of that layout.
        cache_dir: parent folder; the arrays go to ``cache_dir/<cache_key(source)>``.
        workers: decoding processes (default: all CPU cores).
        progress: show a progress bar.

    Returns:
        The finished cache folder.

    Raises:
        DatasetError: missing split or class folders, an undecodable or wrong-size image, a
            truncated archive. Nothing is left in ``cache_dir`` in that case.
    """
    workers = workers or os.cpu_count() or 1
    final = cache_dir / cache_key(source)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=cache_dir))
    try:
        if source.is_dir():
            listing = _list_folder(source, config)
            total = sum(len(v) for v in listing.values())
            stream = ((s, k, n, p) for s, items in listing.items() for k, n, p in items)
            arrays = _decode_all(stream, total, workers, f"decoding {source.name}", progress)
        else:
            total = _count_archive(source, config) if progress else None
            arrays = _decode_all(_iter_archive(source, config), total, workers,
                                 f"decoding {source.name}", progress)
            found = {s: {int(c): 1 for c in np.unique(y)} for s, (_, y) in arrays.items()}
            _check_complete(found, source, config)
        counts = {}
        for split, (X, y) in arrays.items():
            np.save(tmp / f"{split}_X.npy", X)
            np.save(tmp / f"{split}_y.npy", y)
            counts[split] = int(len(y))
        manifest = {"format": _FORMAT, "source": str(source.resolve()), "counts": counts,
                    "classes": list(config.classes)}
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        if final.exists():  # a stale or concurrent build: replace it
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_cache(folder: Path,
               config: CinicConfig = CINIC10) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Memory-map a finished cache folder; ``None`` if it is absent or incomplete."""
    manifest_path = folder / _MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != _FORMAT:
            return None
        out = {}
        for split in config.splits:
            X = np.load(folder / f"{split}_X.npy", mmap_mode="r")
            y = np.load(folder / f"{split}_y.npy", mmap_mode="r")
            if len(X) != manifest["counts"][split] or len(y) != len(X):
                return None
            out[split] = (X, y)
        return out
    except (OSError, ValueError, KeyError):
        return None
