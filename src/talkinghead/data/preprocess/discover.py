"""Which videos to preprocess, in a fixed order, with their identity ids and clip-id stems.

Input is a folder (searched recursively for :data:`VIDEO_EXTENSIONS`, sorted by relative path), one video file
(a :data:`VIDEO_EXTENSIONS` suffix), or a list file (:data:`LIST_EXTENSIONS`: one video per line, optionally
followed by a tab or comma and an identity id; blank lines and lines starting with ``#`` are skipped; relative
paths are relative to the list's folder; the list's order is kept). Any other file is refused by name.

Identity ids (for the identity split) come from the layout, unless a list names them:

* a video below a sub-folder: the first folder under the root — VoxCeleb's ``id10001/<youtube id>/00001.mp4``
  gives ``id10001``;
* a video directly in the root: its file name without a trailing ``_<digits>`` — HDTF's
  ``WDA_BarackObama_000.mp4`` and ``WDA_BarackObama_001.mp4`` both give ``WDA_BarackObama``.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
LIST_EXTENSIONS = (".txt", ".csv", ".tsv", ".lst")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_TAKE_SUFFIX = re.compile(r"_\d+$")


@dataclass(frozen=True)
class VideoInput:
    """One input video: ``key`` is its path as the user gave it (relative to the root or list), ``stem`` the
    clip-id prefix derived from it (letters, digits, ``_``, ``-``; unique within a run)."""

    path: Path
    key: str
    identity: str
    stem: str


def identity_from_key(key: str) -> str:
    """Identity id of a relative video path (see the module docstring)."""
    parts = PurePosixPath(key).parts
    name = parts[0] if len(parts) > 1 else _TAKE_SUFFIX.sub("", PurePosixPath(key).stem)
    return name or PurePosixPath(key).stem


def _stem(key: str) -> str:
    return _UNSAFE.sub("_", str(PurePosixPath(key).with_suffix(""))).strip("_") or "video"


def _unique_stems(keys: list[str]) -> list[str]:
    stems = [_stem(key) for key in keys]
    seen: dict[str, int] = {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
    return [
        f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}" if seen[stem] > 1 else stem
        for stem, key in zip(stems, keys, strict=True)
    ]


def _from_folder(root: Path) -> list[tuple[Path, str, str | None]]:
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    return [(path, path.relative_to(root).as_posix(), None) for path in found]


def _from_list(list_file: Path) -> list[tuple[Path, str, str | None]]:
    entries = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [field.strip() for field in re.split(r"[\t,]", line, maxsplit=1)]
        if not fields[0]:
            raise ValueError(f"{list_file}:{number}: empty video path")
        path = Path(fields[0]).expanduser()
        key = path.as_posix() if not path.is_absolute() else f"{path.parent.name}/{path.name}"
        entries.append(
            (
                path if path.is_absolute() else list_file.parent / path,
                key,
                fields[1] if len(fields) > 1 and fields[1] else None,
            )
        )
    return entries


def discover_videos(source: str | Path) -> list[VideoInput]:
    """The videos of a folder, video file or list file, in processing order (module docstring); duplicates are
    dropped."""
    source = Path(source)
    suffix = source.suffix.lower()
    if source.is_dir():
        entries = _from_folder(source)
    elif source.is_file() and suffix in VIDEO_EXTENSIONS:
        entries = [(source, source.name, None)]
    elif source.is_file() and suffix in LIST_EXTENSIONS:
        entries = _from_list(source)
    elif source.is_file():
        raise ValueError(
            f"--videos: {source} is neither a video ({', '.join(VIDEO_EXTENSIONS)}) nor a list file "
            f"({', '.join(LIST_EXTENSIONS)})"
        )
    else:
        raise FileNotFoundError(f"--videos: {source} is neither a folder nor a file")
    seen, unique = set(), []
    for path, key, identity in entries:
        if key not in seen:
            seen.add(key)
            unique.append((path, key, identity))
    stems = _unique_stems([key for _, key, _ in unique])
    return [
        VideoInput(path, key, _UNSAFE.sub("_", identity or identity_from_key(key)), stem)
        for (path, key, identity), stem in zip(unique, stems, strict=True)
    ]
