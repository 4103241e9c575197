"""core/pipeline/sparse_conv.py against a dense 3D convolution masked to the active sites: the
rule book's output sites must be exactly the sites the dense convolution reaches (submanifold: the
input sites), and the implicit GEMM's values the dense values there, on random and real-frame sites."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers.dense_conv import dense_conv

from bevfusion_ros.core.errors import BackendError, InputError
from bevfusion_ros.core.model import VoxelGrid
from bevfusion_ros.core.pipeline.sparse_conv import SparseConvGeometry, implicit_gemm, rule_book
from bevfusion_ros.core.pipeline.voxels import voxelize


def check_against_dense(sites: Any, features: Any, weights: Any, geometry: SparseConvGeometry) -> int:
    """Asserts the sparse layer equals the dense one on its sites; returns the number of output sites."""
    book = rule_book(sites, geometry)
    out = implicit_gemm(features, weights, book.pair_fwd)
    cells = tuple(sites[:, 1:].T)
    dense_in = np.zeros((features.shape[1], *geometry.spatial_shape))
    dense_in[(slice(None), *cells)] = features.T
    occupied = np.zeros((1, *geometry.spatial_shape))
    occupied[(0, *cells)] = 1.0
    stride = geometry.stride
    padding, dilation = geometry.effective_padding, geometry.dilation
    want = dense_conv(dense_in, weights, stride, padding, dilation)
    reached = dense_conv(occupied, np.ones((1, *geometry.ksize, 1)), stride, padding, dilation)[0] > 0
    got_sites = book.out_indices[:, 1:]
    want_sites = sites[:, 1:] if geometry.subm else np.argwhere(reached)
    assert sorted(map(tuple, got_sites.tolist())) == sorted(map(tuple, want_sites.tolist()))
    assert book.pair_fwd.shape == (geometry.kernel_volume, len(got_sites))
    # fp32 sums in another order than the float64 reference: tolerance relative to the largest value
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(out, want[(slice(None), *got_sites.T)].T, rtol=1e-5, atol=1e-6 * scale)
    # the masks say which offsets feed each output site, and the argsort orders them
    bits = (book.pair_mask.view(np.uint32)[:, None] >> np.arange(geometry.kernel_volume, dtype=np.uint32)) & 1
    np.testing.assert_array_equal(bits.T.astype(bool), book.pair_fwd >= 0)
    assert sorted(book.mask_argsort.tolist()) == list(range(len(got_sites)))
    return len(got_sites)


LAYERS = {
    "subm 3x3x3": ((3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), True),
    "subm dilated": ((3, 3, 3), (1, 1, 1), (0, 0, 0), (2, 1, 2), True),
    "strided 3x3x3 /2": ((3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), False),
    "z-strided 3x1x1 (SparseEncoder conv_out)": ((3, 1, 1), (2, 1, 1), (0, 0, 0), (1, 1, 1), False),
    "even kernel 2x2x2": ((2, 2, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), False),
    "strided, no padding": ((3, 3, 3), (2, 2, 2), (0, 0, 0), (1, 1, 1), False),
}


@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
@pytest.mark.parametrize("seed", [0, 1])
def test_a_sparse_layer_is_the_dense_convolution_on_its_sites(layer: Any, seed: int) -> None:
    ksize, stride, padding, dilation, subm = layer
    rng = np.random.default_rng(seed)
    shape = (7, 9, 11)
    flat = rng.choice(np.prod(shape), 80, replace=False)
    sites = np.concatenate([np.zeros((80, 1), np.int64), np.stack(np.unravel_index(flat, shape), 1)], 1)
    features = rng.standard_normal((80, 3)).astype(np.float32)
    weights = rng.standard_normal((4, *ksize, 3)).astype(np.float32)
    geometry = SparseConvGeometry(shape, ksize, stride, padding, dilation, subm)
    n_out = check_against_dense(sites.astype(np.int32), features, weights, geometry)
    assert n_out == 80 if subm else n_out > 0


@pytest.mark.parametrize("layer", [LAYERS["subm 3x3x3"], LAYERS["strided 3x3x3 /2"]], ids=["subm", "strided"])
def test_real_frame_sites(frame, layer: Any) -> None:  # type: ignore[no-untyped-def]
    """The real sweep voxelised on a 0.4 m grid around the car (40 x 40 x 8 m): clustered sites,
    walls and ground, not uniform noise."""
    ksize, stride, padding, dilation, subm = layer
    grid = VoxelGrid((-20.0, -20.0, -5.0, 20.0, 20.0, 3.0), (0.4, 0.4, 0.4))
    vox = voxelize(np.asarray(frame.points, np.float32)[:, :4], grid, max_points=10, max_voxels=100000)
    assert len(vox.coords) > 2000
    weights = np.random.default_rng(3).standard_normal((2, *ksize, 4)).astype(np.float32)
    geometry = SparseConvGeometry(grid.shape, ksize, stride, padding, dilation, subm)
    check_against_dense(vox.coords, vox.features, weights, geometry)


def test_two_batches_do_not_mix() -> None:
    sites = np.asarray([[0, 1, 1, 1], [1, 1, 1, 2]], np.int32)  # neighbours in space, not in batch
    book = rule_book(sites, SparseConvGeometry((3, 3, 3), (3, 3, 3), padding=(1, 1, 1), subm=True), batch_size=2)
    assert ((book.pair_fwd >= 0).sum(axis=0) == 1).all()  # each site sees only itself


def test_no_sites_give_no_output() -> None:
    for subm in (True, False):
        geometry = SparseConvGeometry((4, 4, 4), (3, 3, 3), (1, 1, 1) if subm else (2, 2, 2), (1, 1, 1), subm=subm)
        book = rule_book(np.zeros((0, 4), np.int32), geometry)
        assert book.out_indices.shape == (0, 4) and book.pair_fwd.shape == (27, 0)
        assert implicit_gemm(
            np.zeros((0, 2), np.float32), np.ones((3, 3, 3, 3, 2), np.float32), book.pair_fwd
        ).shape == (0, 3)


def test_float16_features_keep_their_dtype() -> None:
    geometry = SparseConvGeometry((3, 3, 3), (3, 3, 3), padding=(1, 1, 1), subm=True)
    book = rule_book(np.asarray([[0, 1, 1, 1], [0, 1, 1, 2]], np.int32), geometry)
    out = implicit_gemm(np.ones((2, 2), np.float16), np.ones((1, 3, 3, 3, 2), np.float16), book.pair_fwd)
    assert out.dtype == np.float16 and out.tolist() == [[4.0], [4.0]]


@pytest.mark.parametrize(
    ("sites", "fragment"),
    [
        ([[0, 4, 0, 0]], "1 sparse indices lie outside batch 1 x spatial_shape [4, 4, 4] (first: [0, 4, 0, 0])"),
        ([[1, 0, 0, 0]], "outside batch 1"),
        ([[0, 1, 1, 1], [0, 1, 1, 1]], "the same site twice"),
        ([[0, 1, 1]], "must be integer [N, 4]"),
    ],
)
def test_bad_indices_are_one_clear_error(sites: Any, fragment: str) -> None:
    geometry = SparseConvGeometry((4, 4, 4), (3, 3, 3), padding=(1, 1, 1), subm=True)
    with pytest.raises(InputError) as err:
        rule_book(np.asarray(sites, np.int32), geometry)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("keys", "fragment"),
    [
        ({"ksize": (5, 5, 5)}, "has 125 offsets; the implicit-GEMM contract holds at most 32"),
        ({"ksize": (3, 3, 3), "stride": (2, 2, 2), "subm": True}, "submanifold convolution needs stride 1"),
        ({"ksize": (0, 3, 3)}, "ksize must be positive"),
        ({"ksize": (9, 1, 1), "spatial_shape": (4, 4, 4)}, "has no output sites"),
    ],
)
def test_bad_geometry_is_refused(keys: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BackendError) as err:
        SparseConvGeometry(**{"spatial_shape": (8, 8, 8), **keys})
    assert fragment in str(err.value)


def test_implicit_gemm_checks_its_shapes() -> None:
    with pytest.raises(BackendError, match="features have 3 channels and the filters 2"):
        implicit_gemm(np.ones((4, 3), np.float32), np.ones((1, 3, 3, 3, 2), np.float32), np.zeros((27, 4), np.int32))
    with pytest.raises(BackendError, match="index rows up to 9 of 4"):
        implicit_gemm(np.ones((4, 2), np.float32), np.ones((1, 1, 1, 1, 2), np.float32), np.full((1, 2), 9, np.int32))
