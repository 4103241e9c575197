"""Sparse 3D convolution as spconv computes it, in vectorised numpy: the CPU side of the two ONNX ops
a VoxelNet LiDAR encoder exports to (``GetIndicePairsImplicitGemm`` builds the rule book,
``ImplicitGemm`` applies one layer's weights through it; engines/README.md has the op contract).

The convolution is a cross-correlation on a grid of active sites (batch, z, y, x):
``out[o] = sum_k W[k] @ in[i]`` over the kernel offsets ``k`` for which input site
``i = o * stride - padding + k * dilation`` is active.
* submanifold (``subm``): the output sites are the input sites; the kernel is centred
  (``padding = ksize // 2 * dilation``, as spconv does whatever padding the layer declares);
* regular (strided): the output sites are every site that at least one active input reaches,
  the dilated site set of spconv's ``SparseConv3d``.
Kernel offsets are numbered row-major over (kz, ky, kx), the order of the filter tensor
[Cout, kz, ky, kx, Cin] (spconv's KRSC layout).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BackendError, InputError

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Vec3 = tuple[int, int, int]

# the implicit-GEMM masks hold one bit per kernel offset in an int32 (spconv's single mask split)
MAX_KERNEL_VOLUME = 32
_GATHER_FLOATS = 4 << 20


@dataclass(frozen=True)
class SparseConvGeometry:
    """One layer's grid and kernel; every triple is (z, y, x) like the coordinates."""

    spatial_shape: Vec3
    ksize: Vec3
    stride: Vec3 = (1, 1, 1)
    padding: Vec3 = (0, 0, 0)
    dilation: Vec3 = (1, 1, 1)
    subm: bool = False

    def __post_init__(self) -> None:
        for key in ("spatial_shape", "ksize", "stride", "dilation"):
            if any(v < 1 for v in getattr(self, key)):
                msg = f"sparse convolution {key} must be positive, got {list(getattr(self, key))}"
                raise BackendError(msg)
        if any(v < 0 for v in self.padding):
            msg = f"sparse convolution padding must be >= 0, got {list(self.padding)}"
            raise BackendError(msg)
        if self.kernel_volume > MAX_KERNEL_VOLUME:
            msg = (
                f"sparse convolution ksize {list(self.ksize)} has {self.kernel_volume} offsets; the implicit-GEMM "
                f"contract holds at most {MAX_KERNEL_VOLUME} (one int32 mask per output site)"
            )
            raise BackendError(msg)
        if self.subm and (self.stride != (1, 1, 1) or any(k % 2 == 0 for k in self.ksize)):
            msg = (
                f"a submanifold convolution needs stride 1 and an odd ksize, got stride {list(self.stride)} "
                f"ksize {list(self.ksize)}"
            )
            raise BackendError(msg)
        if any(v < 1 for v in self.out_shape):
            msg = f"sparse convolution on {list(self.spatial_shape)} with ksize {list(self.ksize)} has no output sites"
            raise BackendError(msg)

    @property
    def kernel_volume(self) -> int:
        return int(np.prod(self.ksize))

    @property
    def effective_padding(self) -> Vec3:
        if self.subm:
            kz, ky, kx = (k // 2 * d for k, d in zip(self.ksize, self.dilation, strict=True))
            return kz, ky, kx
        return self.padding

    @property
    def out_shape(self) -> Vec3:
        if self.subm:
            return self.spatial_shape
        d, h, w = (
            (n + 2 * p - dl * (k - 1) - 1) // s + 1
            for n, k, s, p, dl in zip(
                self.spatial_shape, self.ksize, self.stride, self.padding, self.dilation, strict=True
            )
        )
        return d, h, w

    def offsets(self) -> I64:
        """[K, 3] kernel offsets (kz, ky, kx), row-major."""
        grid = np.indices(self.ksize).reshape(3, -1).T
        return grid.astype(np.int64)


@dataclass(frozen=True)
class RuleBook:
    """What ``GetIndicePairsImplicitGemm`` outputs, minus the count (``len(out_indices)``)."""

    out_indices: I32  # [M, 4] (batch, z, y, x) of the output sites
    pair_fwd: I32  # [K, M] input row feeding output site m through offset k, -1 where none
    pair_mask: I32  # [M] bit k set where pair_fwd[k, m] >= 0 (uint32 bits in an int32)
    mask_argsort: I32  # [M] output sites ordered by mask, so equal masks run together on the GPU


def _linear(coords: I64, batch_shape: tuple[int, int, int, int]) -> I64:
    _, d, h, w = batch_shape
    return ((coords[..., 0] * d + coords[..., 1]) * h + coords[..., 2]) * w + coords[..., 3]


def _checked_sites(indices: npt.ArrayLike, geometry: SparseConvGeometry, batch_size: int) -> I64:
    sites = np.asarray(indices)
    if sites.ndim != 2 or sites.shape[1] != 4 or not np.issubdtype(sites.dtype, np.integer):
        msg = f"sparse indices must be integer [N, 4] (batch, z, y, x), got {sites.dtype} {list(sites.shape)}"
        raise InputError(msg)
    sites = sites.astype(np.int64)
    upper = np.asarray((batch_size, *geometry.spatial_shape), np.int64)
    outside = ((sites < 0) | (sites >= upper)).any(axis=1)
    if outside.any():
        first = sites[np.flatnonzero(outside)[0]].tolist()
        msg = (
            f"{int(outside.sum())} sparse indices lie outside batch {batch_size} x spatial_shape "
            f"{list(geometry.spatial_shape)} (first: {first}); the voxel grid and the encoder's sparse shape disagree"
        )
        raise InputError(msg)
    return sites


def _axis_masks(zyx: I64, shift: I64, size: I64) -> list[dict[int, npt.NDArray[np.bool_]]]:
    """Per axis, per distinct shift along it: whether each site moved by it stays on the grid."""
    return [
        {int(v): (zyx[:, a] + v >= 0) & (zyx[:, a] + v < size[a]) for v in np.unique(shift[:, a])} for a in range(3)
    ]


def _strided_axis(column: I64, shifts: I64, stride: int, size: int) -> dict[int, tuple[npt.NDArray[np.bool_], I64]]:
    """Per distinct shift along one axis: whether (column - shift) lands on an output index, and that index."""
    out = {}
    for v in np.unique(shifts):
        num = column - v
        index = num // stride
        out[int(v)] = ((num % stride == 0) & (index >= 0) & (index < size), index)
    return out


def rule_book(indices: npt.ArrayLike, geometry: SparseConvGeometry, batch_size: int = 1) -> RuleBook:
    """The pairs of one sparse convolution (spconv's ``get_indice_pairs_implicit_gemm``, forward only)."""
    sites = _checked_sites(indices, geometry, batch_size)
    n = len(sites)
    in_shape = (batch_size, *geometry.spatial_shape)
    in_keys = _linear(sites, in_shape)
    order = np.argsort(in_keys, kind="stable")
    sorted_keys = in_keys[order]
    if n > 1 and (sorted_keys[1:] == sorted_keys[:-1]).any():
        msg = "sparse indices hold the same site twice; each active site must appear once"
        raise InputError(msg)
    shift = geometry.offsets() * np.asarray(geometry.dilation, np.int64) - np.asarray(geometry.effective_padding)
    stride = np.asarray(geometry.stride, np.int64)
    out_upper = np.asarray(geometry.out_shape, np.int64)
    k_count = geometry.kernel_volume
    pair_fwd: I32
    if n == 0:
        out_sites, pair_fwd = sites, np.zeros((k_count, 0), np.int32)
    elif geometry.subm:
        out_sites = sites
        pair_fwd = np.full((k_count, n), -1, np.int32)
        zyx = sites[order, 1:]
        # one bounds test per axis and shift, then per offset one search of the shifted (still
        # sorted) keys in the sorted keys: numpy narrows each search from the previous hit
        inside = _axis_masks(zyx, shift, np.asarray(geometry.spatial_shape, np.int64))
        key_step = np.asarray([in_shape[2] * in_shape[3], in_shape[3], 1], np.int64)
        for k, step in enumerate(shift):
            query = sorted_keys + int(step @ key_step)
            pos = np.searchsorted(sorted_keys, query)
            np.minimum(pos, n - 1, out=pos)
            hit = inside[0][step[0]] & inside[1][step[1]] & inside[2][step[2]] & (sorted_keys[pos] == query)
            pair_fwd[k, order[hit]] = order[pos[hit]]
    else:
        # output site o is reached from input i through offset k when o * stride = i - shift[k]
        out_shape = (batch_size, *geometry.out_shape)
        per_axis = [_strided_axis(sites[:, 1 + a], shift[:, a], int(stride[a]), int(out_upper[a])) for a in range(3)]
        base = sites[:, 0] * out_shape[1]
        k_parts, i_parts, key_parts = [], [], []
        for k, step in enumerate(shift):
            (vz, oz), (vy, oy), (vx, ox) = (per_axis[a][int(step[a])] for a in range(3))
            rows = np.flatnonzero(vz & vy & vx)
            key_parts.append(((base[rows] + oz[rows]) * out_shape[2] + oy[rows]) * out_shape[3] + ox[rows])
            i_parts.append(rows)
            k_parts.append(np.full(len(rows), k, np.int64))
        unique_keys, slot = np.unique(np.concatenate(key_parts), return_inverse=True)
        out_sites = np.stack(np.unravel_index(unique_keys, out_shape), axis=1)
        pair_fwd = np.full((k_count, len(unique_keys)), -1, np.int32)
        pair_fwd[np.concatenate(k_parts), slot] = np.concatenate(i_parts).astype(np.int32)
    active = pair_fwd >= 0
    weights = np.left_shift(np.uint64(1), np.arange(k_count, dtype=np.uint64))
    mask = (active.T.astype(np.uint64) @ weights if active.size else np.zeros(active.shape[1], np.uint64)).astype(
        np.uint32
    )
    mask_argsort = np.argsort(-mask.astype(np.int64), kind="stable").astype(np.int32)
    return RuleBook(out_sites.astype(np.int32), pair_fwd, mask.view(np.int32), mask_argsort)


def implicit_gemm(features: npt.ArrayLike, filters: npt.ArrayLike, pair_fwd: npt.ArrayLike) -> npt.NDArray[np.floating]:
    """One layer's output [M, Cout] from input features [N, Cin], filters [Cout, kz, ky, kx, Cin] and
    the rule book's ``pair_fwd`` [K, M]; accumulated in float32, returned in the features' dtype."""
    x = np.asarray(features)
    w = np.asarray(filters)
    pairs = np.asarray(pair_fwd)
    if x.ndim != 2 or w.ndim != 5 or pairs.ndim != 2:
        msg = (
            f"ImplicitGemm needs features [N, Cin], filters [Cout, kz, ky, kx, Cin] and pairs [K, M], got "
            f"{list(x.shape)}, {list(w.shape)}, {list(pairs.shape)}"
        )
        raise BackendError(msg)
    c_out, c_in = w.shape[0], w.shape[4]
    k_count = int(np.prod(w.shape[1:4]))
    if x.shape[1] != c_in or pairs.shape[0] != k_count:
        msg = (
            f"ImplicitGemm shapes disagree: features have {x.shape[1]} channels and the filters {c_in}; the "
            f"filters have {k_count} offsets and the pairs {pairs.shape[0]}"
        )
        raise BackendError(msg)
    if pairs.size and (pairs.max() >= len(x) or pairs.min() < -1):
        msg = f"ImplicitGemm pairs index rows up to {int(pairs.max())} of {len(x)} input features"
        raise BackendError(msg)
    # im2col through the pairs: each output row gathers its K input rows (a zero row where there is
    # none) and one GEMM applies all offsets; chunked so the gathered block stays ~16 MB
    x32 = np.concatenate([x.astype(np.float32, copy=False), np.zeros((1, c_in), np.float32)])
    w32 = w.astype(np.float32, copy=False).reshape(c_out, k_count * c_in).T
    rows = np.where(pairs >= 0, pairs, len(x)).T
    out = np.empty((pairs.shape[1], c_out), np.float32)
    chunk = max(1, _GATHER_FLOATS // max(1, k_count * c_in))
    for start in range(0, len(rows), chunk):
        block = x32[rows[start : start + chunk]].reshape(-1, k_count * c_in)
        np.matmul(block, w32, out=out[start : start + chunk])
    return out.astype(x.dtype, copy=False)
