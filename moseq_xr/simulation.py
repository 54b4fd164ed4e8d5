"""``moseq_xr.simulate``: pose Datasets drawn from the model, with ground truth.

The animal is a chain of keypoints (nose to tail) whose shape varies along a
random low-dimensional basis driven by switching autoregressive dynamics, one
set per syllable. It moves by a centroid random walk in a square arena and
turns smoothly. Tracking is imperfect: per-keypoint noise scaled by the
confidence (heavy-tailed), occasional outlier jumps with low confidence, and
NaN gaps. The truth comes back as variables ``true_syllable``,
``true_latent_state``, ``true_centroid`` and ``true_heading`` over
``(recording, individual, time[, ...])``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.core.embedding import center_embedding
from moseq_xr.io.load import from_arrays
from moseq_xr.schema import names as N

RODENT_KEYPOINTS = (
    "nose",
    "left_ear",
    "right_ear",
    "neck",
    "left_hip",
    "right_hip",
    "tail_base",
    "tail_mid",
)


def sticky_transition_matrix(num_states: int, mean_duration: float) -> np.ndarray:
    """Stay with probability ``1 - 1/mean_duration``, else jump uniformly elsewhere."""
    stay = 1.0 - 1.0 / max(mean_duration, 1.0 + 1e-9)
    off = (1.0 - stay) / (num_states - 1)
    return np.full((num_states, num_states), off) + (stay - off) * np.eye(num_states)


def random_dynamics(
    rng: np.random.Generator, num_states: int, latent_dim: int, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw stable, distinct AR(1) dynamics ``(A, b, noise sd)``.

    The dynamics are damped rotations towards well-separated fixed points.
    """
    A = np.zeros((num_states, latent_dim, latent_dim))
    for state in range(num_states):
        decay = rng.uniform(0.7, 0.9)
        for pair in range(latent_dim // 2):
            angle = rng.uniform(-0.4, 0.4)
            c, s = np.cos(angle), np.sin(angle)
            i = 2 * pair
            A[state, i : i + 2, i : i + 2] = decay * np.array([[c, -s], [s, c]])
        if latent_dim % 2:
            A[state, -1, -1] = decay
    centres = 2.0 * rng.standard_normal((num_states, latent_dim))
    b = np.einsum("spq,sq->sp", np.eye(latent_dim) - A, centres)
    return A, b, noise


def sample_syllables(
    rng: np.random.Generator, pi: np.ndarray, num_frames: int
) -> np.ndarray:
    """A Markov chain of ``num_frames`` states with a uniform first state."""
    cumulative = np.cumsum(pi, axis=1)
    uniforms = rng.random(num_frames)
    z = np.empty(num_frames, dtype=np.int64)
    z[0] = rng.integers(pi.shape[0])
    for t in range(1, num_frames):
        z[t] = min(np.searchsorted(cumulative[z[t - 1]], uniforms[t]), pi.shape[0] - 1)
    return z


def sample_latents(rng: np.random.Generator, z: np.ndarray, dynamics) -> np.ndarray:
    """Roll the switching AR(1) forward from the first syllable's fixed point."""
    A, b, noise = dynamics
    dim = b.shape[-1]
    x = np.empty((z.size, dim))
    x[0] = np.linalg.solve(np.eye(dim) - A[z[0]], b[z[0]])
    innovations = noise * rng.standard_normal((z.size, dim))
    for t in range(1, z.size):
        x[t] = A[z[t]] @ x[t - 1] + b[z[t]] + innovations[t]
    return x


def sample_trajectory(
    rng: np.random.Generator,
    num_frames: int,
    num_dims: int,
    step_sd: float,
    turn_sd: float,
    arena: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Centroid random walk reflected into a square arena; smoothly turning heading."""
    steps = step_sd * rng.standard_normal((num_frames, num_dims))
    steps[:, 2:] *= 0.1
    walk = rng.uniform(-0.5 * arena, 0.5 * arena, num_dims) + np.cumsum(steps, axis=0)
    period = 4 * arena
    folded = np.mod(walk + arena, period)
    centroid = np.where(folded > 2 * arena, period - folded, folded) - arena
    heading = np.angle(
        np.exp(1j * np.cumsum(turn_sd * rng.standard_normal(num_frames)))
    )
    return centroid, heading


def _rotate(points: np.ndarray, heading: np.ndarray) -> np.ndarray:
    rotated = points.copy()
    cos, sin = np.cos(heading)[:, None], np.sin(heading)[:, None]
    rotated[..., 0] = cos * points[..., 0] - sin * points[..., 1]
    rotated[..., 1] = sin * points[..., 0] + cos * points[..., 1]
    return rotated


def observe_keypoints(
    rng, x, centroid, heading, Cd, confidence, nu_s, slope=-0.5, intercept=0.25
) -> np.ndarray:
    """Observe keypoints ``Y = R(h) Gamma (C x + d) + v + noise``.

    The noise scale is drawn from the confidence prior.
    """
    num_frames, num_keypoints = confidence.shape
    prior_scale = 10 ** (2 * (slope * np.log10(confidence + 1e-6) + intercept))
    scale = nu_s * prior_scale / rng.chisquare(nu_s, confidence.shape)
    embedded = (x @ Cd[:, :-1].T + Cd[:, -1]).reshape(num_frames, num_keypoints - 1, -1)
    pose = np.einsum("kj,tjd->tkd", center_embedding(num_keypoints), embedded)
    noise = np.sqrt(scale)[..., None] * rng.standard_normal(pose.shape)
    return _rotate(pose, heading) + centroid[:, None, :] + noise


def _keypoint_names(num_keypoints: int) -> list[str]:
    if num_keypoints == len(RODENT_KEYPOINTS):
        return list(RODENT_KEYPOINTS)
    return [f"keypoint_{i}" for i in range(num_keypoints)]


def body_template(num_keypoints: int, num_dims: int, body_length: float) -> np.ndarray:
    """A resting body: keypoints from nose (+x) to tail (-x), alternating sides."""
    along = np.linspace(0.5, -0.5, num_keypoints) * body_length
    side = np.where(np.arange(num_keypoints) % 2, 1.0, -1.0) * 0.12 * body_length
    side[0] = 0.0
    template = np.zeros((num_keypoints, num_dims))
    template[:, 0], template[:, 1] = along, side
    if num_dims == 3:
        template[:, 2] = (
            0.1 * body_length * np.cos(np.linspace(0, np.pi, num_keypoints))
        )
    return template - template.mean(axis=0)


def _emission(rng, num_keypoints, num_dims, latent_dim, body_length) -> np.ndarray:
    basis = center_embedding(num_keypoints)
    mean = (basis.T @ body_template(num_keypoints, num_dims, body_length)).ravel()
    loadings = rng.standard_normal((mean.size, latent_dim)) * 0.08 * body_length
    return np.concatenate([loadings, mean[:, None]], axis=1)


def _confidences(rng, shape, outliers, gaps):
    confidence = rng.beta(8.0, 1.5, size=shape)
    confidence[outliers] = rng.uniform(0.01, 0.1, size=int(outliers.sum()))
    confidence[gaps] = np.nan
    return confidence


def _gap_mask(rng, shape, rate):
    """NaN gaps of 1-10 frames starting at a rate per keypoint-frame."""
    mask = np.zeros(shape, dtype=bool)
    starts = np.argwhere(rng.random(shape) < rate)
    for frame, keypoint in starts:
        mask[frame : frame + rng.integers(1, 11), keypoint] = True
    return mask


def _recording(rng, num_frames, shared, options):
    z = sample_syllables(rng, shared["pi"], num_frames)
    x = sample_latents(rng, z, shared["dynamics"])
    centroid, heading = sample_trajectory(
        rng, num_frames, options["num_dims"], options["step_sd"], 0.05, options["arena"]
    )
    if options["fix_heading"]:
        heading = np.zeros_like(heading)
    shape = (num_frames, options["num_keypoints"])
    outliers = rng.random(shape) < options["outlier_rate"]
    gaps = _gap_mask(rng, shape, options["nan_rate"])
    confidence = _confidences(rng, shape, outliers, gaps)
    Y = observe_keypoints(
        rng,
        x,
        centroid,
        heading,
        shared["Cd"],
        np.nan_to_num(confidence, nan=1.0),
        options["nu_s"],
    )
    jumps = rng.uniform(0.5, 1.5, size=(int(outliers.sum()), options["num_dims"]))
    Y[outliers] += (
        jumps * options["body_length"] * rng.choice([-1, 1], size=jumps.shape)
    )
    Y[gaps] = np.nan
    return Y, confidence, {"z": z, "x": x, "v": centroid, "h": heading}


def _truth_variable(values: list[np.ndarray], num_frames: list[int], extra_dims, fill):
    length = max(num_frames)
    out = []
    for value in values:
        padded = np.full(
            (length, *value.shape[1:]), fill, dtype=np.result_type(value, fill)
        )
        padded[: value.shape[0]] = value
        out.append(padded[None])  # individual axis
    return ((N.RECORDING, N.INDIVIDUAL, N.TIME, *extra_dims), np.stack(out))


#: Dim of ``true_latent_state``: the simulation's own latent dimension, which a
#: fit's ``latent`` dim (its ``latent_dim``) need not match.
TRUE_LATENT = "true_latent"


def simulate(
    num_recordings: int = 2,
    num_frames: int | Sequence[int] = 3000,
    num_keypoints: int = 8,
    num_dims: int = 2,
    num_syllables: int = 8,
    latent_dim: int = 4,
    target_duration: float = 0.4,
    fps: float = 30.0,
    *,
    body_length: float = 60.0,
    dynamics_noise: float = 0.15,
    nu_s: float = 5.0,
    outlier_rate: float = 0.002,
    nan_rate: float = 0.001,
    fix_heading: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """Simulate a pose Dataset from the keypoint-SLDS model, with ground truth.

    Parameters
    ----------
    num_recordings
        Number of recordings.
    num_frames
        Frames per recording (one number, or one per recording).
    num_keypoints, num_dims
        K keypoints in D = 2 or 3 dimensions.
    num_syllables, latent_dim
        True number of syllables and dimension of the pose latent space.
    target_duration
        Mean syllable duration in seconds (durations are geometric).
    fps
        Frames per second.
    body_length
        Nose-to-tail length in pixels.
    dynamics_noise
        Standard deviation of the AR innovations.
    nu_s
        Degrees of freedom of the per-keypoint noise (heavier tails when small).
    outlier_rate, nan_rate
        Per keypoint-frame rates of outlier jumps and of NaN gaps (1-10 frames).
    fix_heading
        Keep the heading at 0 (head-fixed animal).
    seed
        Seed of every random draw.

    Returns
    -------
    xarray.Dataset
        A valid pose Dataset plus ``true_syllable``, ``true_latent_state``,
        ``true_centroid`` and ``true_heading``.
    """
    frames = (
        [int(num_frames)] * num_recordings
        if np.isscalar(num_frames)
        else [int(n) for n in num_frames]
    )
    if len(frames) != num_recordings or min(frames) < 2:
        raise ValueError(
            f"num_frames must give {num_recordings} lengths of at least 2, "
            f"got {num_frames}"
        )
    if num_dims not in (2, 3):
        raise ValueError(f"num_dims must be 2 or 3, got {num_dims}")
    options = dict(
        num_dims=num_dims,
        num_keypoints=num_keypoints,
        step_sd=0.05 * body_length,
        arena=8 * body_length,
        fix_heading=fix_heading,
        outlier_rate=outlier_rate,
        nan_rate=nan_rate,
        nu_s=nu_s,
        body_length=body_length,
    )
    rng = np.random.default_rng(seed)
    shared = {
        "pi": sticky_transition_matrix(num_syllables, target_duration * fps),
        "dynamics": random_dynamics(rng, num_syllables, latent_dim, dynamics_noise),
        "Cd": _emission(rng, num_keypoints, num_dims, latent_dim, body_length),
    }
    drawn = [_recording(rng, n, shared, options) for n in frames]
    names = [f"recording_{i}" for i in range(num_recordings)]
    ds = from_arrays(
        {name: Y for name, (Y, _, _) in zip(names, drawn, strict=True)},
        keypoints=_keypoint_names(num_keypoints),
        fps=fps,
        confidences={name: c for name, (_, c, _) in zip(names, drawn, strict=True)},
        source_software="moseq_xr.simulate",
    )
    truths = [t for _, _, t in drawn]
    ds = ds.assign(
        true_syllable=_truth_variable([t["z"] for t in truths], frames, (), -1),
        true_latent_state=_truth_variable(
            [t["x"] for t in truths], frames, (TRUE_LATENT,), np.nan
        ),
        true_centroid=_truth_variable(
            [t["v"] for t in truths], frames, (N.SPACE,), np.nan
        ),
        true_heading=_truth_variable([t["h"] for t in truths], frames, (), np.nan),
    )
    ds.attrs = with_provenance(
        ds.attrs,
        "moseq_xr.simulate",
        {
            "num_recordings": num_recordings,
            "num_frames": frames,
            "num_keypoints": num_keypoints,
            "num_dims": num_dims,
            "num_syllables": num_syllables,
            "latent_dim": latent_dim,
            "target_duration": target_duration,
            "fps": fps,
            "seed": seed,
            **options,
        },
    )
    ds.attrs["space_unit"] = "pixels"
    names = [str(k) for k in ds.keypoint.values]
    ds.attrs["skeleton"] = [[a, b] for a, b in itertools.pairwise(names)]
    return ds
