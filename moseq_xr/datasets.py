"""Small example datasets that the package generates itself.

:func:`example_poses` draws top-view 2-D poses of a rodent-like body walking
around a circular arena: behaviour switches every few hundred milliseconds
between resting, walking, turning and rearing, the body bends as it turns,
and the data have the defects of real tracking (short NaN gaps, stretches of
low confidence and a few single-frame jumps). Nothing is downloaded, so docs
and tests can use it anywhere.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.io.load import from_arrays

#: Keypoints of the example body, nose to tail, and their place in the body
#: frame (pixels; x points forward, y to the animal's left).
BODY_TEMPLATE: dict[str, tuple[float, float]] = {
    "nose": (30.0, 0.0),
    "left_ear": (20.0, 7.0),
    "right_ear": (20.0, -7.0),
    "neck": (13.0, 0.0),
    "left_hip": (-10.0, 9.0),
    "right_hip": (-10.0, -9.0),
    "tail_base": (-20.0, 0.0),
    "tail_mid": (-38.0, 0.0),
}

_SKELETON: list[tuple[str, str]] = [
    ("nose", "left_ear"),
    ("nose", "right_ear"),
    ("left_ear", "neck"),
    ("right_ear", "neck"),
    ("neck", "left_hip"),
    ("neck", "right_hip"),
    ("left_hip", "tail_base"),
    ("right_hip", "tail_base"),
    ("tail_base", "tail_mid"),
]


class _Behaviour(NamedTuple):
    speed: float  # pixels per frame
    turn: float  # radians per frame
    length: float  # body length relative to the template


_BEHAVIOURS = (
    _Behaviour(0.0, 0.0, 1.0),  # rest
    _Behaviour(3.0, 0.0, 1.05),  # walk
    _Behaviour(1.2, 0.05, 0.95),  # turn left
    _Behaviour(1.2, -0.05, 0.95),  # turn right
    _Behaviour(0.2, 0.0, 0.7),  # rear (body foreshortened from above)
)

ARENA_RADIUS = 220.0
ARENA_CENTRE = (250.0, 250.0)


def _keypoint_names(num_keypoints: int) -> list[str]:
    if not 3 <= num_keypoints <= len(BODY_TEMPLATE):
        raise ValueError(
            f"num_keypoints must be between 3 and {len(BODY_TEMPLATE)}, "
            f"got {num_keypoints}"
        )
    return list(BODY_TEMPLATE)[:num_keypoints]


def example_skeleton(keypoints: list[str]) -> list[list[str]]:
    """Skeleton edges of the example body among ``keypoints``.

    Parameters
    ----------
    keypoints
        Keypoint names from :data:`BODY_TEMPLATE`.

    Returns
    -------
    list of [str, str]
        Edges whose two ends are both in ``keypoints``.
    """
    return [[a, b] for a, b in _SKELETON if a in keypoints and b in keypoints]


def _smooth(targets: np.ndarray, rate: float) -> np.ndarray:
    """Exponential smoothing along the first axis (behaviour changes gradually)."""
    out = np.empty_like(targets)
    out[0] = targets[0]
    for t in range(1, len(targets)):
        out[t] = out[t - 1] + rate * (targets[t] - out[t - 1])
    return out


def _behaviour_sequence(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Behaviour index per frame; bouts last 0.2-1.5 s at 30 fps."""
    labels = np.empty(num_frames, dtype=np.int64)
    start = 0
    while start < num_frames:
        length = int(rng.integers(6, 45))
        labels[start : start + length] = rng.integers(len(_BEHAVIOURS))
        start += length
    return labels


def _trajectory(
    num_frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centroid (T, 2), heading (T,), turn rate (T,) and body length (T,)."""
    table = np.array(_BEHAVIOURS)[_behaviour_sequence(num_frames, rng)]
    speed, turn, length = _smooth(table, 0.15).T
    turn = turn + 0.01 * rng.standard_normal(num_frames)
    centre = np.array(ARENA_CENTRE)
    position = centre + rng.uniform(-60, 60, size=2)
    heading = rng.uniform(-np.pi, np.pi)
    centroid = np.empty((num_frames, 2))
    headings = np.empty(num_frames)
    for t in range(num_frames):
        offset = position - centre
        if np.hypot(*offset) > 0.8 * ARENA_RADIUS:  # steer back from the wall
            inward = np.arctan2(-offset[1], -offset[0])
            heading += 0.15 * np.angle(np.exp(1j * (inward - heading)))
        heading += turn[t]
        position = position + speed[t] * np.array([np.cos(heading), np.sin(heading)])
        centroid[t], headings[t] = position, heading
    return centroid, headings, turn, length


def _body_points(
    template: np.ndarray, turn: np.ndarray, length: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Keypoints in the body frame, (T, K, 2): stretch, bend with turns, head sway."""
    points = np.broadcast_to(template, (len(turn), *template.shape)).copy()
    points[..., 0] *= length[:, None]
    sway = _smooth(0.08 * rng.standard_normal(len(turn)), 0.2) * 4
    bend = np.where(points[..., 0] >= 0, sway[:, None], -6.0 * turn[:, None])
    bend = bend * np.abs(points[..., 0]) / 30.0
    cos, sin = np.cos(bend), np.sin(bend)
    x, y = points[..., 0], points[..., 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)


def _to_world(
    points: np.ndarray, centroid: np.ndarray, heading: np.ndarray
) -> np.ndarray:
    cos, sin = np.cos(heading)[:, None], np.sin(heading)[:, None]
    x, y = points[..., 0], points[..., 1]
    world = np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)
    return world + centroid[:, None, :]


def _tracking_defects(
    position: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Add jitter, low-confidence stretches, NaN gaps and outlier jumps."""
    num_frames, num_keypoints, _ = position.shape
    confidence = np.clip(rng.normal(0.95, 0.03, size=(num_frames, num_keypoints)), 0, 1)
    position = position + rng.normal(0.0, 0.7, size=position.shape)
    for _ in range(max(1, num_frames // 300)):  # low-confidence stretches
        k, start, size = rng.integers(num_keypoints), rng.integers(num_frames), 20
        stretch = slice(start, start + int(rng.integers(5, size)))
        confidence[stretch, k] = rng.uniform(
            0.05, 0.4, size=confidence[stretch, k].shape
        )
        position[stretch, k] += rng.normal(0.0, 3.0, size=position[stretch, k].shape)
    for _ in range(max(1, num_frames // 600)):  # tracking lost: NaN gaps
        k, start = rng.integers(num_keypoints), rng.integers(num_frames)
        gap = slice(start, start + int(rng.integers(3, 30)))
        position[gap, k], confidence[gap, k] = np.nan, np.nan
    for _ in range(max(1, num_frames // 600)):  # single-frame jumps to a wrong spot
        t, k = rng.integers(num_frames), rng.integers(num_keypoints)
        angle = rng.uniform(-np.pi, np.pi)
        position[t, k] += rng.uniform(80, 150) * np.array(
            [np.cos(angle), np.sin(angle)]
        )
        confidence[t, k] = rng.uniform(0.3, 0.6)
    return position, confidence


def _one_recording(
    num_frames: int, template: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    centroid, heading, turn, length = _trajectory(num_frames, rng)
    body = _body_points(template, turn, length, rng)
    return _tracking_defects(_to_world(body, centroid, heading), rng)


def example_poses(
    num_recordings: int = 2,
    num_frames: int = 1800,
    num_keypoints: int = 8,
    seed: int = 0,
    fps: float = 30.0,
) -> xr.Dataset:
    """Generate a small, realistic-looking 2-D pose Dataset.

    Parameters
    ----------
    num_recordings
        Number of recordings, named ``example_0``, ``example_1``, ...
    num_frames
        Frames per recording (1800 = one minute at 30 fps).
    num_keypoints
        3 to 8; the first ones of nose, left_ear, right_ear, neck, left_hip,
        right_hip, tail_base, tail_mid.
    seed
        Seed of the random generator; the same seed gives the same data.
    fps
        Frame rate recorded in the Dataset.

    Returns
    -------
    xarray.Dataset
        A valid pose Dataset in pixels, with a skeleton, tracker-like
        confidences, a few NaN gaps and a few single-frame outlier jumps.

    Examples
    --------
    >>> from moseq_xr.datasets import example_poses
    >>> ds = example_poses(num_recordings=1, num_frames=60)
    >>> ds.sizes["keypoint"]
    8
    """
    if num_recordings < 1 or num_frames < 2:
        raise ValueError("need at least one recording of at least 2 frames")
    keypoints = _keypoint_names(num_keypoints)
    template = np.array([BODY_TEMPLATE[k] for k in keypoints])
    rng = np.random.default_rng(seed)
    positions, confidences = {}, {}
    for index in range(num_recordings):
        name = f"example_{index}"
        positions[name], confidences[name] = _one_recording(num_frames, template, rng)
    ds = from_arrays(
        positions, keypoints, fps, confidences=confidences, source_software="moseq_xr"
    )
    ds["position"].attrs["units"] = "pixels"
    attrs = dict(ds.attrs, space_unit="pixels", skeleton=example_skeleton(keypoints))
    ds.attrs = with_provenance(
        attrs,
        "moseq_xr.datasets.example_poses",
        {
            "num_recordings": num_recordings,
            "num_frames": num_frames,
            "num_keypoints": num_keypoints,
            "seed": seed,
            "fps": fps,
        },
    )
    return ds
