"""Evaluation report: a per-video CSV with summary rows, and markdown tables in VividTalk's Table 1 layout.

Every cell is a number or ``n/a (reason)``; a metric whose network weights were not supplied reads
``n/a (weights not supplied)`` everywhere, never a number. Settings (§4.3): a generated video is
**same-identity** (reconstruction) when a reference video is paired with it, **cross-identity** (dubbing)
otherwise. The summary row of a setting holds the mean over its videos of each metric that has numbers
(``n/a`` cells are skipped; when none has a number the first reason is kept) and the setting's FID, a
set-level metric computed over all of its frames.
"""

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from talkinghead.atomic import atomic_output

SAME, CROSS = "same-identity", "cross-identity"
SETTINGS = (SAME, CROSS)
SET_LEVEL = "n/a (set-level metric, see the summary row)"
NO_VIDEOS = "n/a (no videos)"

COLUMNS = (
    "video",
    "setting",
    "seed_group",
    "reference_video",
    "reference_image",
    "frames",
    "frames_without_face",
    "lse_d",
    "lse_c",
    "av_offset",
    "fid",
    "csim",
    "hpd",
    "pose_diversity_deg",
    "pose_diversity_cm",
    "landmark_distance",
    "psnr",
    "ssim",
    "lve",
    "mouth_open_std",
    "lip_sync_r",
    "head_motion",
    "mouth_r",
    "mouth_amplitude_ratio",
)
METRICS = COLUMNS[COLUMNS.index("lse_d") :]

Row = dict[str, object]


def summary_name(setting: str) -> str:
    return f"mean ({setting})"


def _mean(values: list[object]) -> object:
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    if numbers:
        return sum(numbers) / len(numbers)
    return next((v for v in values if isinstance(v, str) and v), NO_VIDEOS)


def summary_rows(rows: Sequence[Row], fid: dict[str, object]) -> list[Row]:
    """One ``mean (setting)`` row per setting (module docstring); ``fid`` maps setting → value or n/a text."""
    summaries = []
    for setting in SETTINGS:
        members = [row for row in rows if row["setting"] == setting]
        summary: Row = {
            "video": summary_name(setting),
            "setting": setting,
            "seed_group": "",
            "reference_video": "",
            "reference_image": "",
        }
        summary["frames"] = sum(int(row["frames"]) for row in members)
        summary["frames_without_face"] = sum(int(row["frames_without_face"]) for row in members)
        for metric in METRICS:
            summary[metric] = _mean([row[metric] for row in members]) if members else NO_VIDEOS
        summary["fid"] = fid.get(setting, NO_VIDEOS) if members else NO_VIDEOS
        summaries.append(summary)
    return summaries


def format_value(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4f}"
    return str(value)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path`` (no partial file)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"output folder {str(path.parent)!r} does not exist")
    try:
        with atomic_output(path) as temp, open(temp, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
    except OSError as error:
        raise ValueError(f"output folder {str(path.parent)!r} is not writable ({error.strerror})") from None


def csv_text(rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: format_value(row.get(key, "")) for key in COLUMNS})
    return buffer.getvalue()


def _cell(value: object, digits: int = 3) -> str:
    if isinstance(value, float) and not math.isinf(value):
        return f"{value:.{digits}f}"
    return format_value(value)


def markdown_tables(summaries: Sequence[Row], method: str = "talkinghead") -> str:
    """Table 1 of the paper (SyncNet = LSE-C) and a second table of the additional metrics, per setting."""
    same, cross = ({row["setting"]: row for row in summaries}[s] for s in SETTINGS)
    table1 = [
        "| Method | Same-Identity SyncNet ↑ | FID ↓ | CSIM ↑ | HPD ↑ | Cross-Identity SyncNet ↑ | CSIM ↑ | HPD ↑ |",
        "|---|---|---|---|---|---|---|---|",
        "| "
        + " | ".join(
            [method]
            + [_cell(same[k]) for k in ("lse_c", "fid", "csim", "hpd")]
            + [_cell(cross[k]) for k in ("lse_c", "csim", "hpd")]
        )
        + " |",
    ]
    extra_columns = (
        ("lse_d", "LSE-D ↓"),
        ("av_offset", "AV offset (frames)"),
        ("landmark_distance", "LMD (px) ↓"),
        ("psnr", "PSNR (dB) ↑"),
        ("ssim", "SSIM ↑"),
        ("lve", "LVE (cm) ↓"),
        ("pose_diversity_deg", "Seed diversity (deg) ↑"),
        ("pose_diversity_cm", "Seed diversity (cm) ↑"),
        ("mouth_open_std", "Mouth opening std"),
        ("lip_sync_r", "Lip-sync r (envelope)"),
        ("head_motion", "Head motion"),
        ("mouth_r", "Mouth r vs real ↑"),
        ("mouth_amplitude_ratio", "Mouth amplitude ratio (→1)"),
    )
    extra = [
        "| Setting | Frames | " + " | ".join(title for _, title in extra_columns) + " |",
        "|---|---|" + "---|" * len(extra_columns),
    ]
    for row in (same, cross):
        cells = [str(row["setting"]), str(row["frames"])] + [_cell(row[key]) for key, _ in extra_columns]
        extra.append("| " + " | ".join(cells) + " |")
    return "\n".join(
        [
            "## Table 1 (VividTalk layout; SyncNet = LSE-C, HPD in deg²)",
            "",
            *table1,
            "",
            "## Additional metrics",
            "",
            *extra,
            "",
        ]
    )
