"""The CUDA NMS kernels (edgedet/csrc/nms_kernels.cu) equal the oracle bit for bit (docs/nms.md).

The cuda-marked tests run the kernels through benchmarks/gpu/nms_kernels.py (ctypes) on CuPy arrays
(the device machine); elsewhere they skip. Every call gets a workspace and outputs filled with
garbage, so nothing relies on zeroed memory. Where exp is involved (sigmoid, centre-size anchor
decode) the oracle's numpy exp and CUDA's expf may differ by a few ulp: the sigmoid is then computed
on the GPU with CuPy (the same libdevice expf) and fed to the oracle as plain scores (decisions
exact, scores within 4 ulp), and centre-size
decode
compares boxes to within 8 ulp of each box's scale.

The non-marked tests need no GPU: the kernels' arithmetic (score keys, decode, IoU) compiled for the
host (nvcc) against numpy, the ctypes wrapper with fake device arrays, and a numpy emulation of the
kernels' algorithm (sort keys, candidate prefix, 64-bit mask words, word-by-word settle with the K
stop).
"""

import ctypes

import numpy as np
import pytest

from edgedet.nms import NMSParams, batched_nms, reference_nms
from edgedet.nms.boxes import NMSOutput, activate, decode, iou

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from nms_cases import GRID, SPECIAL_COORDS, assert_bits_equal, assert_same_output, cases
# the device machine may lack hypothesis: the property tests skip, the others still run
except ImportError:
    given = settings = st = cases = None
    GRID = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
    SPECIAL_COORDS = [1e30, -1e30, 3e38, -3e38, np.inf, -np.inf, np.nan, 1e-30, -0.0, 0.5, 1e7 + 1]

    # nms_cases.assert_bits_equal: bits up to NaN payload and sign of zero
    def assert_bits_equal(a, b, name=""):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{name}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        )
        if a.dtype.kind == "f":
            a, b = a + a.dtype.type(0), b + b.dtype.type(0)
            assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name}: NaN positions differ"
            a, b = a.view(np.int32)[~np.isnan(a)], b.view(np.int32)[~np.isnan(b)]
        assert np.array_equal(a, b), f"{name}: values differ\n{a}\n{b}"

    def assert_same_output(got, want, fields=NMSOutput._fields):
        for name in fields:
            assert_bits_equal(getattr(got, name), getattr(want, name), name)


def property_test(max_examples: int, strategies):
    """@settings + @given(*strategies()); without hypothesis the test is skipped with the reason."""
    if given is None:
        return pytest.mark.skip(reason="hypothesis is not installed")
    return lambda fn: settings(max_examples=max_examples, deadline=None)(given(*strategies())(fn))


GARBAGE = 0xAB


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    pytest.importorskip("cupy", reason="the CUDA NMS tests use CuPy for device buffers")
    from benchmarks.gpu.nms_kernels import bind
    from edgedet.cuda_build import compile_library

    return bind(
        ctypes.CDLL(str(compile_library(tmp_path_factory.mktemp("nms") / "libedgedet_kernels.so")))
    )


def run_gpu(
    lib, boxes, scores, p: NMSParams, anchors=None, dtype=np.float32, **thresholds
) -> NMSOutput:
    """The kernels on host arrays (converted to ``dtype``), dirty workspace and outputs; numpy
    NMSOutput."""
    import cupy as cp

    from benchmarks.gpu.nms_kernels import c_params, run_nms_cuda, workspace_size

    dev = [
        None if a is None else cp.asarray(np.ascontiguousarray(a, dtype))
        for a in (boxes, scores, anchors)
    ]
    b, n, c = scores.shape
    need = workspace_size(
        lib, c_params(p, b, n, c, boxes.ndim == 4, 0 if anchors is None else anchors.shape[0])
    )
    workspace = cp.full(need, GARBAGE, cp.uint8)
    k = p.max_output_boxes
    outputs = NMSOutput(
        *(
            cp.full(shape, 7, t)
            for shape, t in (
                ((b, 1), cp.int32),
                ((b, k, 4), dtype),
                ((b, k), dtype),
                ((b, k), cp.int32),
                ((b, k), cp.int32),
            )
        )
    )
    out = run_nms_cuda(lib, *dev[:2], p, dev[2], workspace=workspace, outputs=outputs, **thresholds)
    cp.cuda.runtime.deviceSynchronize()
    return NMSOutput(*(cp.asnumpy(o) for o in out))


def exp_free(case):
    """Drop the parts of a hypothesis case that call exp, so the comparison can be bit-exact."""
    boxes, scores, p, anchors = case
    return (
        boxes,
        scores,
        p.replace(score_activation=False, box_coding=0 if anchors is not None else p.box_coding),
        anchors,
    )


@pytest.mark.cuda
@property_test(300, lambda: [cases().map(exp_free)])
def test_gpu_equals_reference(lib, case):
    """Per-class and shared boxes, corner anchors, background class, NaN / inf scores and
    coordinates, duplicates, exact IoUs at the thresholds, top_k cuts, K cuts, batch 2, empty N."""
    boxes, scores, p, anchors = case
    assert_same_output(
        run_gpu(lib, boxes, scores, p, anchors), reference_nms(boxes, scores, p, anchors)
    )


@pytest.mark.cuda
@property_test(100, lambda: [cases().map(exp_free)])
def test_gpu_fp16_equals_reference_on_fp16_inputs(lib, case):
    """float16 in and out: the oracle on the same half inputs (computed in float32), outputs rounded
    to half."""
    boxes, scores, p, anchors = case
    h = [None if a is None else a.astype(np.float16) for a in (boxes, scores, anchors)]
    want = reference_nms(h[0], h[1], p, h[2])
    want = want._replace(
        det_boxes=want.det_boxes.astype(np.float16), det_scores=want.det_scores.astype(np.float16)
    )
    got = run_gpu(lib, *h[:2], p, h[2], dtype=np.float16)
    for name in NMSOutput._fields:
        a, b = getattr(got, name), getattr(want, name)
        if a.dtype == np.float16:  # assert_bits_equal views floats as int32
            a, b = a.astype(np.float32), b.astype(np.float32)
        assert_bits_equal(a, b, name)


def clustered(b: int, n: int, c: int, seed: int, objects: int = 20, per_class: bool = False):
    """Realistic heads: jittered copies of a few objects (xyxy in 640 x 640), low background scores
    elsewhere."""
    rng = np.random.default_rng(seed)
    centre = rng.random((b, objects, 2)) * 560 + 40
    size = np.exp(rng.uniform(np.log(16), np.log(300), (b, objects, 2)))
    owner = rng.integers(0, objects, (b, n))
    take = lambda a: np.take_along_axis(a, owner[..., None], 1)  # noqa: E731
    jitter = rng.normal(0, 0.05, (b, n, 4))
    cxy = take(centre) + jitter[..., :2] * take(size)
    wh = take(size) * np.exp(jitter[..., 2:])
    boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], -1).astype(np.float32)
    scores = (rng.random((b, n, c)) ** 6 * 0.2).astype(np.float32)
    cls = np.take_along_axis(rng.integers(0, c, (b, objects)), owner, 1)
    quality = np.exp(-np.abs(jitter).sum(-1) * 12) * rng.uniform(0.5, 1.0, (b, n))
    bi, ni = np.indices((b, n))
    scores[bi, ni, cls] = np.maximum(scores[bi, ni, cls], quality).astype(np.float32)
    if per_class:
        boxes = (boxes[:, :, None, :] + rng.normal(0, 2, (b, n, c, 4))).astype(np.float32)
    return boxes, scores


@pytest.mark.cuda
@pytest.mark.parametrize(
    "n, c, thr, top_k, k, agnostic",
    [
        (8400, 80, 0.25, 1000, 300, False),
        (8400, 80, 0.001, 4096, 300, False),
        (8400, 80, 0.001, 5000, 300, True),
        # top_k beyond EfficientNMS_TRT's 4096, N*C = 2,016,000
        (
            25200,
            80,
            0.001,
            10000,
            300,
            False,
        ),
        (2100, 6, 0.0, 0, 100, False),  # top_k 0: all 12600 candidates
        (2100, 6, 0.05, 3000, 1000, True),
    ],
)
def test_gpu_equals_host_on_realistic_heads(lib, n, c, thr, top_k, k, agnostic):
    """Batch 2, thousands of candidates (many mask words, several settle rounds): equal to the host
    path, which is bit-exact with the oracle (tests/nms/test_nms_host.py)."""
    boxes, scores = clustered(2, n, c, seed=n + c)
    p = NMSParams(
        score_threshold=thr,
        iou_threshold=0.45,
        max_output_boxes=k,
        top_k=top_k,
        class_agnostic=agnostic,
    )
    assert_same_output(run_gpu(lib, boxes, scores, p), batched_nms(boxes, scores, p))


@pytest.mark.cuda
def test_gpu_per_class_boxes_and_background(lib):
    boxes, scores = clustered(2, 3000, 7, seed=3, per_class=True)
    for p in (
        NMSParams(score_threshold=0.01, max_output_boxes=200, top_k=2000, background_class=0),
        NMSParams(
            score_threshold=0.01,
            max_output_boxes=200,
            top_k=2000,
            background_class=6,
            class_agnostic=True,
        ),
    ):
        assert_same_output(run_gpu(lib, boxes, scores, p), batched_nms(boxes, scores, p))


@pytest.mark.cuda
def test_gpu_sigmoid_matches_oracle_on_gpu_activated_scores(lib):
    """score_activation: the oracle gets scores activated on the GPU by CuPy (libdevice expf, like
    the kernel).

    Decisions and boxes must be equal; scores within 4 ulp: -fmad=false changes libdevice's expf
    (one of its FMAs is a contraction; CuPy builds with FMA), the printed count says how many
    differ."""
    import cupy as cp

    boxes, scores = clustered(2, 4000, 10, seed=5)
    with np.errstate(divide="ignore"):
        logits = np.log(scores / (1 - scores)).astype(np.float32)
    logits[0, :5] = [[np.nan] * 10, [np.inf] * 10, [-np.inf] * 10, [40.0] * 10, [-40.0] * 10]
    s = cp.asarray(logits)
    activated = cp.asnumpy(cp.float32(1) / (cp.float32(1) + cp.exp(-s)))
    p = NMSParams(score_threshold=0.02, max_output_boxes=300, top_k=3000, score_activation=True)
    got, want = (
        run_gpu(lib, boxes, logits, p),
        batched_nms(boxes, activated, p.replace(score_activation=False)),
    )
    assert_same_output(got, want, fields=("num_dets", "det_boxes", "det_classes", "det_indices"))
    assert_within_ulp(got.det_scores, want.det_scores, 4, "det_scores")
    print(
        "sigmoid scores differing from CuPy's:"
        f" {np.count_nonzero(got.det_scores != want.det_scores)}"
    )


def assert_within_ulp(a, b, ulp: int, name: str) -> None:
    """Same NaN / inf positions; finite values at most ``ulp`` float32 spacings apart."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(
        a[np.isinf(a)], b[np.isinf(a)]
    ), name
    ok = np.isfinite(a) & np.isfinite(b)
    assert np.all(
        np.abs(a[ok] - b[ok]) <= ulp * np.spacing(np.maximum(np.abs(a[ok]), np.abs(b[ok])))
    ), f"{name}: more than {ulp} ulp apart"


def assert_boxes_close(a, b, ulp: int, name: str) -> None:
    """Decoded corners where exp differs by a few ulp: x1 = cx - w/2 cancels, so the tolerance is
    ``ulp`` spacings of the largest finite coordinate of the box, not of the coordinate itself."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name}: NaN positions differ"
    ok = np.isfinite(a) & np.isfinite(b)
    scale = np.max(np.where(ok, np.maximum(np.abs(a), np.abs(b)), 0), -1, keepdims=True)
    with np.errstate(invalid="ignore"):
        close = np.where(ok, np.abs(a - b) <= ulp * np.spacing(scale), a == b) | np.isnan(a)
    assert close.all(), f"{name}: more than {ulp} ulp (of the box's scale) apart"


@pytest.mark.cuda
@pytest.mark.parametrize("anchors_batch", [1, 2])
@pytest.mark.parametrize("per_class", [False, True])
def test_gpu_centre_size_anchor_decode(lib, anchors_batch, per_class):
    """Fused decode with box_scale and the exp clamp: decisions equal, boxes within 8 ulp of the
    box's scale (CUDA expf built with -fmad=false vs numpy exp)."""
    rng = np.random.default_rng(7 + anchors_batch + 2 * per_class)
    n, c = 3000, 5
    anchors = np.concatenate(
        [rng.random((anchors_batch, n, 2)) * 600, rng.uniform(8, 200, (anchors_batch, n, 2))], -1
    )
    deltas = rng.normal(0, 1, (2, n, c, 4) if per_class else (2, n, 4))
    deltas[..., 2:][rng.random(deltas[..., 2:].shape) < 0.01] = (
        80.0  # beyond the clamp: exp(log(1000/16))
    )
    scores = rng.random((2, n, c)).astype(np.float32)
    p = NMSParams(
        score_threshold=0.3,
        iou_threshold=0.5,
        max_output_boxes=300,
        top_k=2000,
        box_coding=1,
        box_scale=(10.0, 10.0, 5.0, 5.0),
    )
    anchors, deltas = anchors.astype(np.float32), deltas.astype(np.float32)
    got, want = run_gpu(lib, deltas, scores, p, anchors), batched_nms(deltas, scores, p, anchors)
    assert_same_output(got, want, fields=("num_dets", "det_scores", "det_classes", "det_indices"))
    assert_boxes_close(got.det_boxes, want.det_boxes, 8, "det_boxes")


@pytest.mark.cuda
def test_gpu_corner_anchor_decode_is_exact(lib):
    rng = np.random.default_rng(11)
    anchors = (
        np.sort(rng.random((1, 2000, 2, 2)) * 600, -2)
        .transpose(0, 1, 3, 2)
        .reshape(1, 2000, 4)
        .astype(np.float32)
    )
    deltas = rng.normal(0, 20, (3, 2000, 4)).astype(np.float32)
    scores = rng.random((3, 2000, 4)).astype(np.float32)
    p = NMSParams(
        score_threshold=0.5, max_output_boxes=100, top_k=1500, box_scale=(2.0, 2.0, 0.5, 0.5)
    )
    assert_same_output(
        run_gpu(lib, deltas, scores, p, anchors), batched_nms(deltas, scores, p, anchors)
    )


@pytest.mark.cuda
def test_gpu_edge_cases(lib):
    same = np.tile(np.array([10, 10, 50, 60], np.float32), (1, 150, 1))
    flat = np.full((1, 150, 1), 0.5, np.float32)
    cases_ = [
        # 150 duplicates, equal scores: the lowest index is kept
        (
            same,
            flat,
            NMSParams(max_output_boxes=5),
        ),
        # IoU exactly 1 suppresses nothing
        (
            same,
            flat,
            NMSParams(iou_threshold=1.0, max_output_boxes=100),
        ),
        # all below (not above) the threshold: all padding
        (
            same,
            flat,
            NMSParams(score_threshold=0.5),
        ),
        (
            same,
            np.where(np.arange(150)[None, :, None] % 3 == 0, np.nan, flat).astype(np.float32),
            NMSParams(),
        ),
        (
            same,
            np.where(np.arange(150)[None, :, None] == 77, np.inf, flat).astype(np.float32),
            NMSParams(),
        ),
        # -0.0 == +0.0 ties
        (
            same,
            np.where(np.arange(150)[None, :, None] % 2 == 0, -0.0, 0.0).astype(np.float32),
            NMSParams(score_threshold=-1.0, iou_threshold=1.0, max_output_boxes=20),
        ),
    ]
    spread = np.arange(400, dtype=np.float32)[None, :, None] * np.float32(20) + np.array(
        [0, 0, 10, 10], np.float32
    )
    cases_.append(
        (
            spread,
            np.random.default_rng(0).random((1, 400, 2)).astype(np.float32),
            NMSParams(max_output_boxes=7),
        )
    )
    for boxes, scores, p in cases_:
        assert_same_output(run_gpu(lib, boxes, scores, p), reference_nms(boxes, scores, p))


@pytest.mark.cuda
def test_gpu_device_thresholds(lib):
    """Thresholds read on the device override the params and can change between calls."""
    import cupy as cp

    boxes, scores = clustered(1, 2000, 4, seed=9)
    p = NMSParams(score_threshold=0.9, iou_threshold=0.9, max_output_boxes=200, top_k=1500)
    score_thr, iou_thr = (
        cp.asarray(np.float32(0.1)).reshape(()),
        cp.asarray(np.float32(0.3)).reshape(()),
    )
    for s, i in ((0.1, 0.3), (0.02, 0.6), (0.5, 0.45)):
        score_thr.fill(s)
        iou_thr.fill(i)
        got = run_gpu(
            lib, boxes, scores, p, score_threshold_dev=score_thr, iou_threshold_dev=iou_thr
        )
        assert_same_output(
            got, batched_nms(boxes, scores, p.replace(score_threshold=s, iou_threshold=i))
        )


@pytest.mark.cuda
def test_gpu_refuses_too_many_candidates(lib):
    import cupy as cp

    from benchmarks.gpu.nms_kernels import run_nms_cuda
    from edgedet.errors import EdgeDetError

    with pytest.raises(EdgeDetError, match="refused"):
        run_nms_cuda(
            lib,
            cp.zeros((1, 25200, 4), cp.float32),
            cp.zeros((1, 25200, 80), cp.float32),
            NMSParams(top_k=0),
        )


# -- the kernels' arithmetic on the host: nms_kernels.cu included into a host harness (nvcc, no GPU)
# --

HARNESS = r"""
#include "nms_kernels.cu"
extern "C" {
void harness_keys(const float* s, int n, int num_classes, int background, int activation,
                  float thr, uint32_t* keys, float* values) {
    for (int i = 0; i < n; ++i) {
        keys[i] = score_key(s[i], i % num_classes, background, activation, thr);
        values[i] = unordered(~keys[i]);
    }
}
void harness_decode(const float* boxes, const float* anchors, int n, int coding, const float* scale,
                    float* out) {
    DecodeArgs d{0, 1, 0, anchors != nullptr, coding, {scale[0], scale[1], scale[2], scale[3]}};
    for (int i = 0; i < n; ++i) {
        const float* v = boxes + 4 * i;
        const float4 r = decode_box(make_float4(v[0], v[1], v[2], v[3]),
                                    anchors ? anchors + 4 * i : nullptr, d);
        out[4 * i] = r.x, out[4 * i + 1] = r.y, out[4 * i + 2] = r.z, out[4 * i + 3] = r.w;
    }
}
void harness_iou(const float* a, const float* b, int n, float* out) {
    for (int i = 0; i < n; ++i)
        out[i] = iou_of(make_float4(a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]),
                        make_float4(b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]));
}
}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    import shutil

    from edgedet.cuda_build import compile_library

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc (CUDA compiler) not on PATH")
    src = tmp_path_factory.mktemp("harness") / "harness.cu"
    src.write_text(HARNESS)
    # host arithmetic unfused too (GCC contracts a * b + c by default where the CPU has FMA, e.g.
    # aarch64)
    return ctypes.CDLL(
        str(
            compile_library(
                src.with_suffix(".so"),
                sources=[src],
                arch=[],
                extra=["-Xcompiler", "-ffp-contract=off"],
            )
        )
    )


def _f32(a):
    return np.ascontiguousarray(a, np.float32)


def _p(a):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def special_values(rng, size: int, specials) -> np.ndarray:
    v = rng.normal(0, 3, size).astype(np.float32)
    pick = rng.random(size) < 0.3
    v[pick] = rng.choice(np.array(specials, np.float32), pick.sum())
    return v


def test_host_harness_score_keys_rank_like_the_spec(harness):
    """Keys of the score kernel: the spec's candidates, and a stable ascending sort gives its rank
    order."""
    rng = np.random.default_rng(0)
    scores = special_values(
        rng, 6000, [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1e-45, -1e-45, 3e38]
    )
    with np.errstate(over="ignore"):
        scores[:3000] = np.round(scores[:3000], 1)  # many ties
    for thr, bg, c in ((0.0, -1, 3), (-1.0, 1, 3), (0.5, 0, 4), (-np.inf, -1, 1)):
        keys, values = np.empty(scores.size, np.uint32), np.empty(scores.size, np.float32)
        harness.harness_keys(
            _p(scores), scores.size, c, bg, 0, ctypes.c_float(thr), _p(keys), _p(values)
        )
        act = activate(scores, NMSParams())
        flat = np.arange(scores.size)
        cand = (flat % c != bg) & (act > np.float32(thr))
        assert np.array_equal(keys != 0xFFFFFFFF, cand)
        assert_bits_equal(values[cand], act[cand] + np.float32(0), "scores")
        want = sorted(flat[cand], key=lambda i: (-act[i], i))
        assert np.array_equal(np.argsort(keys, kind="stable")[: cand.sum()], want)


def test_host_harness_sigmoid_keys(harness):
    rng = np.random.default_rng(1)
    logits = special_values(rng, 4000, [np.nan, np.inf, -np.inf, 0.0, 20.0, -20.0, 100.0, -100.0])
    keys, values = np.empty(logits.size, np.uint32), np.empty(logits.size, np.float32)
    harness.harness_keys(
        _p(logits), logits.size, 1, -1, 1, ctypes.c_float(-1.0), _p(keys), _p(values)
    )
    act = activate(logits, NMSParams(score_activation=True))
    assert np.array_equal(keys != 0xFFFFFFFF, act > -1)
    assert_within_ulp(values[act > -1], act[act > -1], 4, "sigmoid")  # host expf vs numpy exp


@pytest.mark.parametrize("coding, anchored", [(0, False), (0, True), (1, False), (1, True)])
def test_host_harness_decode_equals_numpy(harness, coding, anchored):
    rng = np.random.default_rng(coding + 2 * anchored)
    specials = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 80.0]
    boxes = special_values(rng, 4 * 5000, specials).reshape(-1, 4)
    anchors = (
        _f32(np.abs(special_values(rng, 4 * 5000, [0.0, 1e30, np.inf, 8.0]).reshape(-1, 4)))
        if anchored
        else None
    )
    p = NMSParams(
        box_coding=coding, box_scale=(10.0, 0.5, 5.0, 3.0) if anchored else (1.0, 1.0, 1.0, 1.0)
    )
    out = np.empty_like(boxes)
    harness.harness_decode(
        _p(boxes), _p(anchors), len(boxes), coding, _p(_f32(p.box_scale)), _p(out)
    )
    want = decode(boxes, anchors, p)
    if coding == 1 and anchored:  # exp: host expf vs numpy exp
        assert_boxes_close(out, want, 4, "centre-size decode")
    else:
        assert_bits_equal(out, want, "decode")


def test_host_harness_iou_equals_numpy(harness):
    rng = np.random.default_rng(3)
    pool = np.array(GRID + SPECIAL_COORDS, np.float32)
    raw = np.where(
        rng.random((2, 20000, 4)) < 0.5,
        rng.choice(pool, (2, 20000, 4)),
        rng.uniform(-20, 20, (2, 20000, 4)),
    )
    a, b = (_f32(decode(_f32(x), None, NMSParams())) for x in raw)
    out = np.empty(len(a), np.float32)
    harness.harness_iou(_p(a), _p(b), len(a), _p(out))
    assert_bits_equal(out, iou(a, b), "iou")


# -- the ctypes wrapper without a GPU: fake device arrays, a recording library ---------------------


class _FakeDeviceArray:
    def __init__(self, shape, dtype, ptr, strides=None):
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": np.dtype(dtype).str,
            "data": (ptr, False),
            "strides": strides,
            "version": 3,
        }


class _RecordingLib:
    def __init__(self):
        self.calls = []
        self.edgedet_nms_workspace_size = lambda params: 4096
        self.edgedet_nms = lambda *args: self.calls.append(args) or 0


def test_wrapper_passes_pointers_in_abi_order():
    from benchmarks.gpu.nms_kernels import run_nms_cuda
    from edgedet.errors import EdgeDetError

    lib, p = (
        _RecordingLib(),
        NMSParams(max_output_boxes=5, top_k=7, background_class=2, box_coding=1),
    )
    outs = NMSOutput(
        *(
            _FakeDeviceArray(s, t, ptr)
            for ptr, (s, t) in enumerate(
                [((2, 1), "i4"), ((2, 5, 4), "f2"), ((2, 5), "f2"), ((2, 5), "i4"), ((2, 5), "i4")],
                start=1,
            )
        )
    )
    run_nms_cuda(
        lib,
        _FakeDeviceArray((2, 10, 3, 4), "f2", 10),
        _FakeDeviceArray((2, 10, 3), "f2", 11),
        p,
        _FakeDeviceArray((1, 10, 4), "f2", 12),
        iou_threshold_dev=_FakeDeviceArray((), "f4", 13),
        workspace=_FakeDeviceArray((4096,), "u1", 14),
        outputs=outs,
        stream=99,
    )
    ((cparams, *pointers),) = lib.calls
    assert pointers == [10, 11, 12, None, 13, 1, 2, 3, 4, 5, 14, 4096, 99]
    c = cparams._obj
    assert (
        c.batch,
        c.num_boxes,
        c.num_classes,
        c.per_class_boxes,
        c.anchors_batch,
        c.data_type,
    ) == (2, 10, 3, 1, 1, 1)
    assert (c.max_output_boxes, c.top_k, c.background_class, c.box_coding) == (5, 7, 2, 1)
    with pytest.raises(EdgeDetError, match="C-contiguous"):
        run_nms_cuda(
            lib,
            _FakeDeviceArray((2, 10, 4), "f4", 10, strides=(4, 8, 4)),
            _FakeDeviceArray((2, 10, 3), "f4", 11),
            p,
            workspace=outs[0],
            outputs=outs,
        )
    with pytest.raises(EdgeDetError, match="all float32 or all float16"):
        run_nms_cuda(
            lib,
            _FakeDeviceArray((2, 10, 4), "f4", 10),
            _FakeDeviceArray((2, 10, 3), "f2", 11),
            p,
            workspace=outs[0],
            outputs=outs,
        )
    with pytest.raises(EdgeDetError, match="expected a device array"):
        run_nms_cuda(
            lib, np.zeros((2, 10, 4), np.float32), _FakeDeviceArray((2, 10, 3), "f4", 11), p
        )


# -- the kernels' algorithm in numpy (no GPU): same keys, prefix, mask words and settle
# --------------


def emulate_kernels(boxes, scores, p: NMSParams, anchors=None) -> NMSOutput:
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    dec = decode(boxes, None if anchors is None else np.asarray(anchors, np.float32), p)
    act = activate(scores, p) + np.float32(0)  # score_kernel: -0.0 keyed as +0.0
    b_, n_, c_ = scores.shape
    bg = p.background_class if 0 <= p.background_class < c_ else -1
    m = min(p.top_k or n_ * c_, n_ * c_)
    k = p.max_output_boxes
    out = NMSOutput(
        np.zeros((b_, 1), np.int32),
        np.zeros((b_, k, 4), np.float32),
        np.zeros((b_, k), np.float32),
        np.zeros((b_, k), np.int32),
        np.full((b_, k), -1, np.int32),
    )
    for b in range(b_):
        s = act[b].reshape(-1)
        u = s.view(np.uint32)
        ordered = np.where(u & 0x80000000, ~u, u | 0x80000000).astype(np.uint32)
        cand = (np.arange(s.size) % c_ != bg) & (s > np.float32(p.score_threshold))
        keys = np.where(cand, ~ordered, np.uint32(0xFFFFFFFF)).astype(np.uint32)
        order = np.argsort(keys, kind="stable")[:m]  # CUB radix sort is stable
        count = int(np.count_nonzero(keys[order] != 0xFFFFFFFF))
        idx = order[:count]
        cn, cc = idx // c_, idx % c_
        cb = dec[b, cn, cc] if dec.ndim == 4 else dec[b, cn]
        words = (count + 63) // 64
        hit = iou(cb[:, None], cb[None, :]) > np.float32(p.iou_threshold)  # mask_kernel
        hit &= np.triu(np.ones((count, count), bool), 1) & (
            p.class_agnostic | (cc[:, None] == cc[None, :])
        )
        mask = np.zeros((count, max(words, 1)), np.uint64)
        for j in range(count):
            mask[:, j // 64] |= hit[:, j].astype(np.uint64) << np.uint64(j % 64)
        removed = np.zeros(max(words, 1), np.uint64)
        kept = []
        # settle_kernel: thread 0 settles one word, the block ORs the later words
        for w in range(words):
            if len(kept) >= k:
                break
            bits, fresh = int(removed[w]), []
            for t in range(64):
                i = w * 64 + t
                if i >= count or len(kept) + len(fresh) >= k:
                    break
                if not (bits >> t) & 1:
                    fresh.append(i)
                    bits |= int(mask[i, w])
            for i in fresh:
                removed[w + 1 :] |= mask[i, w + 1 :]
            kept += fresh
        out.num_dets[b, 0] = len(kept)
        for slot, i in enumerate(kept):
            out.det_boxes[b, slot], out.det_scores[b, slot] = cb[i], s[idx[i]]
            out.det_classes[b, slot], out.det_indices[b, slot] = cc[i], cn[i]
    return out


@property_test(200, lambda: [cases(max_n=40, max_c=3), st.sampled_from([1, 2, 5, 70])])
def test_kernel_algorithm_emulation_equals_reference(case, k):
    """K up to 70 with 120 candidates: settling spans several 64-candidate words."""
    boxes, scores, p, anchors = case
    p = p.replace(max_output_boxes=k)
    assert_same_output(
        emulate_kernels(boxes, scores, p, anchors), reference_nms(boxes, scores, p, anchors)
    )


@pytest.mark.parametrize(
    "per_class, agnostic, k", [(False, False, 300), (True, False, 40), (False, True, 100)]
)
def test_kernel_algorithm_emulation_on_realistic_heads(per_class, agnostic, k):
    """Hundreds of candidates: many mask words, settle rounds that stop at K (also checks
    ``clustered``)."""
    boxes, scores = clustered(2, 700, 3, seed=1, per_class=per_class)
    p = NMSParams(
        score_threshold=0.05,
        max_output_boxes=k,
        top_k=1200,
        class_agnostic=agnostic,
        background_class=1,
    )
    want = batched_nms(boxes, scores, p)
    assert want.num_dets.min() >= 20
    assert_same_output(emulate_kernels(boxes, scores, p), want)
