"""Constants of the CINIC-10 dataset and the course, gathered in one typed object.

Everything that other modules would otherwise hard-code (class names, normalization,
download address, checksum, cache location, environment-variable names) lives here, so a
course can change one thing in one place.

Sources: class order, mean and std are the values published with CINIC-10
(L. N. Darlow et al., "CINIC-10 is not ImageNet or CIFAR-10", arXiv:1810.03505, and the
dataset's README at https://github.com/BayesWatch/cinic-10); the archive address is the
University of Edinburgh DataShare record (handle 10283/3192).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CinicConfig", "CINIC10", "default_cache_dir", "default_model_path", "ENV_ROOT", "ENV_CACHE",
           "ENV_MODEL", "ENV_PER_CLASS", "ENV_EVAL_PER_CLASS", "EVAL_PER_CLASS",
           "ENV_COURSE_DIR", "COLAB_MOUNT", "COLAB_COURSE_DIR", "MODEL_FILE"]

#: Environment variable naming the CINIC-10 location (folder, archive, or ``synthetic``).
ENV_ROOT = "CINIC10_ROOT"
#: Environment variable naming the folder where decoded arrays are cached.
ENV_CACHE = "CINIC10_CACHE"
#: Environment variable: images per class to keep in every split when ``n_per_class`` is not
#: given (a deterministic stratified subset; the autograder uses it for fast, fixed grading data).
ENV_PER_CLASS = "CINIC10_PER_CLASS"
#: Test images per class in the notebook's ``test_data`` (:func:`helpers.data.evaluation_data`): 1,000 of
#: CINIC-10's 9,000, so that one ``test_model`` takes about 1.5 s instead of 12 s on a 2-core CPU.
EVAL_PER_CLASS = 1000
#: Environment variable overriding :data:`EVAL_PER_CLASS`: a positive integer, or ``all`` for the whole
#: test split (the autograder sets ``all``: its kernels evaluate on the grading data as it is).
ENV_EVAL_PER_CLASS = "CINIC10_EVAL_PER_CLASS"
#: Environment variable naming the pretrained model checkpoint used by the notebook.
ENV_MODEL = "PRUNING_MODEL"
#: Environment variable naming the course folder in Google Drive (Colab only).
ENV_COURSE_DIR = "PRUNING_COURSE_DIR"
#: File name of the pretrained model in a student bundle, next to the notebook, in Drive or in the cache.
MODEL_FILE = "pruning-model.pt"
#: Where Colab mounts Google Drive.
COLAB_MOUNT = "/content/drive"
#: Default course folder inside the mounted Drive (overridden by ``PRUNING_COURSE_DIR``).
COLAB_COURSE_DIR = "/content/drive/MyDrive/pruning-course"


@dataclass(frozen=True)
class CinicConfig:
    """Facts about CINIC-10 used by the loader, training and evaluation.

    Attributes:
        classes: class folder names in label order (alphabetical, index 0..9).
        splits: mapping from the names returned by :func:`helpers.get_CINIC10_data`
            (``train``, ``val``, ``test``) to the folder names in the archive.
        image_shape: ``(height, width, channels)`` of every image, uint8 RGB.
        mean, std: per-channel normalization on pixel values scaled to [0, 1].
        url: address of the official ``CINIC-10.tar.gz``.
        archive_name: file name of the archive.
        md5: md5 of the official archive (as used by common loaders).
    """

    classes: tuple[str, ...] = (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )
    splits: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "val": "valid", "test": "test"}
    )
    image_shape: tuple[int, int, int] = (32, 32, 3)
    mean: tuple[float, float, float] = (0.47889522, 0.47227842, 0.43047404)
    std: tuple[float, float, float] = (0.24205776, 0.23828046, 0.25874835)
    url: str = "https://datashare.is.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"
    archive_name: str = "CINIC-10.tar.gz"
    md5: str = "6ee4d0c996905fe93221de577967a372"

    @property
    def num_classes(self) -> int:
        return len(self.classes)


#: The default configuration: the official CINIC-10.
CINIC10 = CinicConfig()


def default_cache_dir() -> Path:
    """Folder for downloads and decoded arrays when no root is given.

    ``$CINIC10_CACHE`` if set, else ``$XDG_CACHE_HOME/pruning-course``, else
    ``~/.cache/pruning-course``. In Colab, point ``CINIC10_CACHE`` (or ``CINIC10_ROOT``)
    at a Google Drive folder to keep the data between sessions.
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pruning-course"


def default_model_path() -> Path:
    """The pretrained model the notebook loads: ``$PRUNING_MODEL``, else
    ``<default_cache_dir()>/pruning-model.pt`` (put the file your instructor gave you there)."""
    env = os.environ.get(ENV_MODEL)
    return Path(env).expanduser() if env else default_cache_dir() / MODEL_FILE
