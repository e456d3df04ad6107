"""Deterministic tractography of many seeds at once, vectorised over the streamlines.

dipy's compiled deterministic tracker (``dipy.tracking.tracker.deterministic_tracking``) follows
one streamline at a time and, at every step, evaluates the fODF on every direction of its sphere
(362) with a plain loop: on a real brain that is most of the SC stage's time. Here a batch of
streamlines advances together, one step for all of them at a time, so the evaluation at a step
is one matrix product (streamlines x SH coefficients times coefficients x directions), which BLAS
does several times faster than the loop, and everything else is a handful of array operations.

The algorithm is dipy's, step for step, with its threshold stopping criterion (``sc.stopping:
fa``):

- positions are voxel coordinates; a seed starts along the largest fODF value on the sphere at
  the seed (dipy takes its largest peak; a seed whose fODF is nowhere positive gives nothing);
- a step reads the SH coefficients at the position (trilinear, dipy's edge rule: points within
  half a voxel of the grid are inside, the edge voxel is repeated), evaluates them on the sphere,
  zeroes values under ``pmf_threshold`` times their maximum, and takes the direction with the
  largest value within ``max_angle`` of the previous one (either sign), turned to continue it;
  no such direction ends the streamline;
- the position moves by ``step_size`` mm (``direction / voxel_size`` in voxels), and the
  streamline ends where the trilinear FA there is not above the threshold or the point is off
  the grid; that last point is not part of the streamline, as in dipy;
- the backward half starts at the seed against the direction of the first forward step.

The streamlines are dipy's (tested on random fODF fields; on 20,000 bids-xa30 seeds all but 3
of 19,954 had dipy's points within 1e-3 mm, the 3 parting at float32 near-ties of two vertices;
3.7x dipy's speed there, README). Probabilistic tracking and CMC stopping stay on dipy's trackers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from connex.structural.tracking import FODF

#: Streamlines advanced together: the step's arrays (batch x 362) stay in cache-friendly sizes, and a
#: batch's streamlines are held until it ends (bids-xa30, 40,000 seeds: 4000 tracked in 8.8 s and
#: peaked 23 MB higher than 2000, which took 9.8 s; 1000 took 10.8 s for 5 MB less).
LOCKSTEP_BATCH = 2000


def corners(points: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 8 grid voxels around each point and their trilinear weights, with dipy's conventions.

    Parameters
    ----------
    points : ndarray (N, 3)
        Voxel coordinates. A point is inside when ``-0.5 <= p < dim - 0.5`` on every axis; the
        edge voxels are repeated beyond the grid's centres (dipy's ``trilinear_interpolate4d``).

    Returns
    -------
    index : ndarray (N, 8) intp
        Flat (C-order) voxel indices of the corners (clamped to the grid).
    weight : ndarray (N, 8)
        Trilinear weights, 0 for points outside.
    inside : ndarray (N,) bool
    """
    size = np.asarray(shape)
    inside = np.all((points >= -0.5) & (points < size - 0.5), axis=1)
    floor = np.floor(points)
    rem = points - floor
    low = floor.astype(np.intp)
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    first = np.minimum(np.maximum(low, 0), size - 1)
    offset = (np.maximum(np.minimum(low + 1, size - 1), 0) - first) * strides  # (N, 3): 0 or the stride
    index = (first @ strides)[:, None] + offset @ _CORNER_BITS.T
    axis_weight = np.stack([1.0 - rem, rem], axis=1)  # (N, 2, 3)
    weight = (axis_weight[:, :, None, None, 0] * axis_weight[:, None, :, None, 1]
              * axis_weight[:, None, None, :, 2]).reshape(len(points), 8)
    weight[~inside] = 0.0
    return index, weight, inside


#: (8, 3): corner c of a voxel cell is ``low + bits[c]`` (x slowest, as ``weight`` is laid out).
_CORNER_BITS = np.array([[(corner >> 2) & 1, (corner >> 1) & 1, corner & 1] for corner in range(8)])


def interpolate(flat: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Values (N, C) of ``flat`` (voxels, C) at points given by :func:`corners`' index and weight,
    in ``flat``'s precision."""
    # np.take gathers rows 2.3x faster than flat[index] (measured); the weights in flat's dtype keep
    # the product in single precision for float32 coefficients
    return (weight.astype(flat.dtype, copy=False)[:, None, :] @ np.take(flat, index, axis=0))[:, 0]


def trilinear(volume: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear interpolation of ``volume`` (X, Y, Z) or (X, Y, Z, C) at voxel coordinates
    (N, 3), dipy's conventions (:func:`corners`): values (N,) or (N, C), 0 off the grid, and
    which points are inside (N,) bool."""
    index, weight, inside = corners(points, volume.shape[:3])
    values = interpolate(volume.reshape(int(np.prod(volume.shape[:3])), -1), index, weight)
    return (values[:, 0] if volume.ndim == 3 else values), inside


class DeterministicTracker:
    """dipy's deterministic tracking with FA stopping, for many seeds at once (module docstring).

    Parameters
    ----------
    fodf : FODF
        fODF SH coefficients in dipy's default (``descoteaux07``, legacy) basis, of the region's
        voxels (:class:`~connex.structural.tracking.FODF`; elsewhere the fODF is zero).
    fa : ndarray (X, Y, Z)
        The stopping map: a streamline goes on while its trilinear value is above ``fa_threshold``.
    sphere : dipy Sphere
        The directions the fODF is evaluated on (dipy's ``default_sphere``).
    voxel_size : ndarray (3,)
        mm; ``step_size`` and the lengths are in mm.
    max_nbr_pts : int
        Points per half streamline at most (dipy's ``max_len / step_size``).
    """

    def __init__(self, fodf: FODF, fa: np.ndarray, fa_threshold: float, sphere, voxel_size: np.ndarray,
                 *, step_size: float, max_angle: float, max_nbr_pts: int, pmf_threshold: float = 0.1):
        from dipy.reconst.shm import order_from_ncoef, sh_to_sf_matrix

        self.shape = tuple(int(n) for n in fa.shape)
        n_voxels = int(np.prod(self.shape))
        # float32 (fit_fodf's): half dipy's float64 copy; the streamlines were the same on bids-xa30 and the demo.
        # The region's rows and a zero row (n + 1, C), and each voxel's row (voxels,): a dense grid
        # of coefficients would hold the zeros outside the region (three quarters of it on bids-xa30).
        self.shm = np.concatenate([np.asarray(fodf.coefficients, dtype=np.float32),
                                   np.zeros((1, fodf.coefficients.shape[1]), dtype=np.float32)])
        self.row = np.full(n_voxels, len(fodf.coefficients), dtype=np.int32)
        self.row[np.flatnonzero(fodf.region)] = np.arange(len(fodf.coefficients), dtype=np.int32)
        self.fa = np.ascontiguousarray(fa, dtype=np.float64).reshape(n_voxels, 1)
        self.fa_threshold = float(fa_threshold)
        self.vertices = np.ascontiguousarray(sphere.vertices, dtype=np.float64)
        order = order_from_ncoef(self.shm.shape[-1])
        # (C, V): coefficients to values on the sphere, the matrix dipy's SHCoeffPmfGen uses.
        # float32 like the coefficients: single-precision products are about 2.7x faster (measured);
        # a streamline can differ from dipy's float64 one only where two vertices tie to 1e-7.
        self.basis = np.ascontiguousarray(sh_to_sf_matrix(sphere, sh_order_max=order, basis_type=None,
                                                          return_inv=False, legacy=True), dtype=np.float32)
        self.step_voxels = float(step_size) / np.asarray(voxel_size, dtype=np.float64)
        self.isotropic = bool(np.allclose(self.step_voxels, self.step_voxels[0], rtol=1e-9, atol=0))
        self.cos_similarity = float(np.cos(np.deg2rad(max_angle)))
        self.max_nbr_pts = int(max_nbr_pts)
        self.pmf_threshold = float(pmf_threshold)
        # (V, K): each vertex's cone as indices (K = 68 of 362 at 35 degrees), so the choice
        # reads K values, not V; a vertex's cone always holds the vertex itself.
        self.cone = self._cone_of(self.vertices)[0]

    def pmf(self, points: np.ndarray) -> np.ndarray:
        """fODF values (N, V) on the sphere at voxel coordinates (N, 3), 0 off the grid (not
        thresholded)."""
        index, weight, _ = corners(points, self.shape)
        return self._pmf_at(index, weight)

    def _pmf_at(self, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return interpolate(self.shm, np.take(self.row, index), weight) @ self.basis

    def seed_directions(self, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sphere vertex (N,) of the largest fODF value at each seed (N, 3 voxel coordinates),
        and which seeds have one (N,) bool (the fODF positive somewhere)."""
        values = self.pmf(seeds)
        best = values.argmax(axis=1)
        return best, values[np.arange(len(seeds)), best] > 0

    def _step_choice(self, values: np.ndarray, cone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dipy's choice: the largest of the values (N, V) at the cone's vertices (N, K indices in
        increasing order), where it is positive and at least ``pmf_threshold`` times the row's
        maximum over all vertices (dipy zeroes the values under that, then takes the largest
        above 0). Returns the vertex (N,) and whether there is one (N,)."""
        floor = self.pmf_threshold * np.maximum(values.max(axis=1), 0.0)
        rows = np.arange(len(values))
        within = np.take(values, cone + (rows * values.shape[1])[:, None])  # flat np.take: faster than take_along_axis
        column = within.argmax(axis=1)
        value = within[rows, column]
        return cone[rows, column], (value > 0) & (value >= floor)

    def _cone_of(self, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vertices within max_angle of each direction (N, 3), either sign (dipy's |cos| test),
        as (N, K) indices in increasing order (argmax then breaks ties as dipy's does over all
        vertices) padded with the row's first, and whether a row has any (N,) bool."""
        within = np.abs(directions @ self.vertices.T) > self.cos_similarity
        width = max(int(within.sum(axis=1).max()), 1)
        # a stable sort puts the cone's vertices first, in increasing order; the padding repeats the first
        order = np.argsort(~within, axis=1, kind="stable")[:, :width]
        return np.where(np.take_along_axis(within, order, axis=1), order, order[:, :1]), within.any(axis=1)

    def _half(self, seeds: np.ndarray, directions: np.ndarray, vertex: np.ndarray,
              active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Track every active seed (N, 3) along its direction (N, 3) until it stops.

        ``vertex`` (N,) is the sphere vertex each direction is (either sign), or -1 where it is
        none (the backward start on an anisotropic grid): the cone of the first step is then
        computed from the direction itself.

        Returns the points after the seed (N, max_nbr_pts - 1, 3; float32 voxel coordinates), how
        many of them belong to each streamline (N,): dipy's ``i - 1``, ``i`` being the step at
        which the streamline stopped (its stopping point dropped) or failed to find a direction;
        and the first step's direction (N, 3) and vertex (N,) (-1 where there was none).
        """
        n = len(seeds)
        first_direction, first_vertex = np.zeros((n, 3)), np.full(n, -1, dtype=np.intp)
        path = np.empty((n, self.max_nbr_pts - 1, 3), dtype=np.float32)
        kept = np.zeros(n, dtype=np.intp)
        position = seeds.astype(np.float64, copy=True)
        direction = directions.astype(np.float64, copy=True)
        vertex = vertex.copy()
        alive = np.flatnonzero(active)
        index, weight, _ = corners(position[alive], self.shape)  # of the alive positions, reused for the next step
        for step in range(1, self.max_nbr_pts):
            if not alive.size:
                break
            values = self._pmf_at(index, weight)
            if step == 1 and (vertex[alive] < 0).any():
                cone, has_cone = self._cone_of(direction[alive])
            else:
                cone, has_cone = np.take(self.cone, vertex[alive], axis=0), True
            best, found = self._step_choice(values, cone)
            found &= has_cone
            kept[alive[~found]] = step - 1
            alive, best = alive[found], best[found]
            new = self.vertices[best]
            new[(direction[alive] * new).sum(axis=1) <= 0] *= -1.0
            direction[alive] = new
            vertex[alive] = best
            position[alive] += new * self.step_voxels
            if step == 1:
                first_direction[alive], first_vertex[alive] = new, best
            path[alive, step - 1] = position[alive]
            index, weight, inside = corners(position[alive], self.shape)
            going = inside & (interpolate(self.fa, index, weight)[:, 0] > self.fa_threshold)
            kept[alive[~going]] = step - 1
            alive, index, weight = alive[going], index[going], weight[going]
        kept[alive] = self.max_nbr_pts - 2  # ran the whole loop: dipy keeps all but the last point
        return path, kept, first_direction, first_vertex

    def track(self, seeds: np.ndarray, *, threads: int = 1) -> list[np.ndarray]:
        """:meth:`iter_track` collected in a list."""
        return list(self.iter_track(seeds, threads=threads))

    def iter_track(self, seeds: np.ndarray, *, threads: int = 1) -> Iterator[np.ndarray]:
        """Streamlines (voxel coordinates, float32 (n_i, 3)) from seeds (N, 3 voxel coordinates),
        one per seed whose fODF is positive somewhere, in seed order, each from its backward end
        through the seed to its forward end. ``LOCKSTEP_BATCH`` seeds advance together, batches
        run on ``threads`` threads (numpy releases the GIL; BLAS is held to one thread each), and
        the result does not depend on either. Yielded batch by batch with at most ``threads``
        batches in flight, so the caller holds one batch's streamlines, not the seeds' all."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        seeds = np.asarray(seeds, dtype=np.float64)
        batches = [seeds[start:start + LOCKSTEP_BATCH] for start in range(0, len(seeds), LOCKSTEP_BATCH)]
        with threadpool_limits(limits=1, user_api="blas"):
            if threads <= 1 or len(batches) == 1:
                for batch in batches:
                    yield from self._track_batch(batch)
                return
            with ThreadPoolExecutor(max_workers=threads) as pool:
                pending = deque(pool.submit(self._track_batch, batch) for batch in batches[:threads])
                for batch in batches[threads:] + [None] * threads:
                    done = pending.popleft().result()
                    if batch is not None:
                        pending.append(pool.submit(self._track_batch, batch))
                    yield from done
                    del done

    def _track_batch(self, seeds: np.ndarray) -> list[np.ndarray]:
        vertex, ok = self.seed_directions(seeds)
        directions = self.vertices[vertex]
        forward, n_forward, first_direction, first_vertex = self._half(seeds, directions, vertex, ok)
        # dipy starts the backward half against its first forward step where the forward half kept
        # a point, against the seed direction otherwise. On an anisotropic grid that step (in voxels)
        # is not along a sphere vertex: its cone is then computed from the direction.
        back, back_vertex = directions.copy(), vertex.copy()
        moved = n_forward >= 1
        step = first_direction[moved] * self.step_voxels
        back[moved] = step / np.linalg.norm(step, axis=1, keepdims=True)
        back_vertex[moved] = first_vertex[moved] if self.isotropic else -1
        backward, n_backward, _, _ = self._half(seeds, -back, back_vertex, ok)
        out = []
        for i in np.flatnonzero(ok):
            out.append(np.concatenate([backward[i, :n_backward[i]][::-1], seeds[i:i + 1].astype(np.float32),
                                       forward[i, :n_forward[i]]]))
        return out
