"""Rotations of many frames at once, with numpy (frames along the first axis): what retargeting computes
forward kinematics and keys with. No bpy."""

from __future__ import annotations

from typing import Any

import numpy as np

FloatArray = Any  # numpy arrays (kept loose: numpy's typing is not worth the noise here)


def _rotation_part(m: FloatArray) -> FloatArray:
    """The rotation of a 3x3 (or (..., 3, 3)) matrix with scale: columns normalised."""
    norms = np.linalg.norm(m, axis=-2, keepdims=True)
    return m / np.where(norms < 1e-12, 1.0, norms)


def _normalized(v: FloatArray) -> FloatArray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


def _rotation_between(a: FloatArray, b: FloatArray) -> FloatArray:
    """The smallest rotation (3x3) turning direction a onto direction b."""
    a, b = _normalized(a), _normalized(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-9:
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis = _normalized(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx * (1.0 / (1.0 + c))


# numpy rotations (frames along the first axis)
# --------------------------------------------------------------------------------------------------


def _quat_to_mat(q: FloatArray) -> FloatArray:
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    m = np.empty((len(q), 3, 3))
    m[:, 0, 0] = 1 - 2 * (y * y + z * z)
    m[:, 0, 1] = 2 * (x * y - z * w)
    m[:, 0, 2] = 2 * (x * z + y * w)
    m[:, 1, 0] = 2 * (x * y + z * w)
    m[:, 1, 1] = 1 - 2 * (x * x + z * z)
    m[:, 1, 2] = 2 * (y * z - x * w)
    m[:, 2, 0] = 2 * (x * z - y * w)
    m[:, 2, 1] = 2 * (y * z + x * w)
    m[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def _axis_mat(axis: str, angle: FloatArray) -> FloatArray:
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros((len(angle), 3, 3))
    i = "XYZ".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    m[:, i, i] = 1.0
    m[:, j, j] = c
    m[:, k, k] = c
    m[:, k, j] = s
    m[:, j, k] = -s
    return m


def _euler_to_mat(e: FloatArray, order: str) -> FloatArray:
    """Blender's Euler: 'XYZ' applies X first, then Y, then Z (R = Rz @ Ry @ Rx)."""
    first, second, third = (_axis_mat(a, e[:, "XYZ".index(a)]) for a in order)
    return third @ second @ first


def _axis_angle_to_mat(aa: FloatArray) -> FloatArray:
    angle = aa[:, 0]
    axis = aa[:, 1:4] / np.maximum(np.linalg.norm(aa[:, 1:4], axis=1, keepdims=True), 1e-12)
    half = angle / 2.0
    q = np.concatenate([np.cos(half)[:, None], axis * np.sin(half)[:, None]], axis=1)
    return _quat_to_mat(q)


def _mat_to_quat(m: FloatArray) -> FloatArray:
    """(N, 3, 3) rotations -> (N, 4) unit quaternions (w, x, y, z)."""
    f = len(m)
    q = np.empty((f, 4))
    t = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cases = np.stack([t, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1).argmax(axis=1)
    for case in range(4):
        sel = cases == case
        if not np.any(sel):
            continue
        r = m[sel]
        if case == 0:
            s = np.sqrt(1.0 + r[:, 0, 0] + r[:, 1, 1] + r[:, 2, 2]) * 2
            q[sel] = np.stack([0.25 * s, (r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s,
                               (r[:, 1, 0] - r[:, 0, 1]) / s], axis=1)
        elif case == 1:
            s = np.sqrt(1.0 + r[:, 0, 0] - r[:, 1, 1] - r[:, 2, 2]) * 2
            q[sel] = np.stack([(r[:, 2, 1] - r[:, 1, 2]) / s, 0.25 * s, (r[:, 0, 1] + r[:, 1, 0]) / s,
                               (r[:, 0, 2] + r[:, 2, 0]) / s], axis=1)
        elif case == 2:
            s = np.sqrt(1.0 + r[:, 1, 1] - r[:, 0, 0] - r[:, 2, 2]) * 2
            q[sel] = np.stack([(r[:, 0, 2] - r[:, 2, 0]) / s, (r[:, 0, 1] + r[:, 1, 0]) / s, 0.25 * s,
                               (r[:, 1, 2] + r[:, 2, 1]) / s], axis=1)
        else:
            s = np.sqrt(1.0 + r[:, 2, 2] - r[:, 0, 0] - r[:, 1, 1]) * 2
            q[sel] = np.stack([(r[:, 1, 0] - r[:, 0, 1]) / s, (r[:, 0, 2] + r[:, 2, 0]) / s,
                               (r[:, 1, 2] + r[:, 2, 1]) / s, 0.25 * s], axis=1)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q


def _continuous(q: FloatArray) -> FloatArray:
    """(B, F, 4) quaternions with neighbouring keys on the same hemisphere (interpolation takes the
    short way), the first key with w >= 0."""
    q = q.copy()
    q[q[:, 0, 0] < 0, 0] *= -1.0
    flips = np.sign(np.einsum("bfi,bfi->bf", q[:, 1:], q[:, :-1]))
    flips[flips == 0] = 1.0
    q[:, 1:] *= np.cumprod(flips, axis=1)[:, :, None]
    return q
