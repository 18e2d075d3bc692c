"""Where a job's outputs go, and how the legacy answers write those places.

The contract fixes the layout: ``S3Dir`` is ``export`` and a job's files live in
``export/<job_id>/``, so the keys are a function of the JobId, the kind and the FileName
(a redelivery overwrites, never adds).  Both doors derive the keys here (a direct event
must carry exactly these, schemas/request.py), so this module imports nothing of the
project: the request definition can use it without a cycle.
"""

from __future__ import annotations

import unicodedata

EXPORT_DIR = "export"  # S3Dir: outputs live under <output root>/export/<job_id>/
_MAX_NAME = 150


def output_name(file_name: str | None, job_id: str) -> tuple[str, str]:
    """(safe base name, video extension) for a FileName; the job id when none is usable.

    Only a trailing ``.mp4``/``.ts`` is an extension (``0.0993375889`` in the contract's
    example is part of the name); every character outside letters, digits and ``._-``
    becomes ``_``, so the name can never leave ``export/<job_id>/``.
    """
    ext = ".mp4"
    name = file_name or ""
    lower = name.lower()
    if lower.endswith(".ts"):
        ext, name = ".ts", name[:-3]
    elif lower.endswith(".mp4"):
        name = name[:-4]
    name = unicodedata.normalize("NFC", name)
    name = "".join(c if (c.isalnum() or c in "._-") else "_" for c in name)
    name = name.strip("._- ")[:_MAX_NAME].rstrip("._- ")
    return (name or job_id), ext


def output_keys(job_id: str, kind: str, file_name: str | None) -> tuple[str, str | None]:
    """Deterministic (image_key, video_key) of a job (``kind`` thumbnail or media)."""
    name, ext = output_name(file_name, job_id)
    image_key = f"{EXPORT_DIR}/{job_id}/{name}.jpg"
    video_key = f"{EXPORT_DIR}/{job_id}/{name}{ext}" if kind == "media" else None
    return image_key, video_key


def legacy_image_path(image_key: str) -> str:
    """ImagePath as the contract writes it: relative to S3Dir ("/<job_id>/<name>.jpg")."""
    prefix = EXPORT_DIR + "/"
    key = image_key.lstrip("/")
    return "/" + (key[len(prefix) :] if key.startswith(prefix) else key)


def legacy_video_path(video_key: str) -> str:
    """VideoPath as the contract writes it: "/export/<job_id>/<name>.mp4"."""
    return "/" + video_key.lstrip("/")
