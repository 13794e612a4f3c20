// EdgeDetNMS CUDA kernels (C ABI in nms_kernels.h; semantics in docs/nms.md, oracle edgedet/nms/reference.py).
//
// Per image, on the caller's stream, no allocation and no synchronisation:
//   1. score_kernel   activation, NaN -> -inf, background, strict `> threshold`; writes a sort key per flat
//                     index n*C + c: ~ordered_bits(score) for candidates (ascending key = descending score),
//                     0xFFFFFFFF for the rest, and the flat index as the value.
//   2. CUB DeviceRadixSort (stable, ascending) of all N*C (key, index) pairs: equal scores keep index order,
//                     which is the spec's tie rule; -0.0 is keyed as +0.0 so the two are equal.
//   3. take_kernel    the first M = min(top_k or N*C, N*C) sorted pairs: the candidate count (first sentinel),
//                     and for each candidate its decoded canonical box, score, class, anchor index.
//   4. mask_kernel    torchvision-style bitmask: bit j of word (i, j / 64) = candidate i (rank i) suppresses j > i
//                     (same class unless class_agnostic, IoU > iou_threshold, IoU exactly as docs/nms.md step 6).
//   5. settle_kernel  one block: greedy in rank order over 64-candidate words, stops at K kept, writes the padded
//                     outputs (zeros past num_dets, det_indices -1).
// Images run one after the other so the scratch memory is one image's worth whatever the batch.
//
// Bit-exactness needs IEEE float ops without contraction: the spec's arithmetic uses __fadd_rn / __fsub_rn /
// __fmul_rn (never fused), and edgedet/cuda_build.py also builds with -fmad=false as docs/nms.md asks.
// expf (never __expf) is within a few ulp of the correctly rounded exp, which the spec allows for; note that
// -fmad=false also changes libdevice's expf (one of its FMAs is a contraction), so it may round differently
// from expf in a default build such as CuPy's.

#include "nms_kernels.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include <cub/device/device_radix_sort.cuh>

namespace {

constexpr uint32_t kSentinel = 0xFFFFFFFFu;        // sort key of a non-candidate (sorts last)
constexpr int kMaxCandidates = EDGEDET_NMS_MAX_CANDIDATES;  // M limit: the mask is M * M / 8 bytes
constexpr size_t kAlign = 256;
// torchvision's BoxCoder clamp log(1000 / 16), rounded to float32 as numpy's np.float32() does
constexpr float kBoxClip = static_cast<float>(4.135166556742356);

// Helpers marked __host__ __device__ are also compiled for the host so tests can check the arithmetic
// against numpy without a GPU (tests/nms/test_nms_cuda.py includes this file into a host harness).
#define EDGEDET_HD __host__ __device__ __forceinline__

__device__ __forceinline__ float load(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, size_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void store(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, size_t i, float v) { p[i] = __float2half_rn(v); }

// numpy's minimum / maximum: NaN-propagating (fminf / fmaxf would drop the NaN)
EDGEDET_HD float nan_min(float a, float b) { return (a != a || b != b) ? a + b : fminf(a, b); }
EDGEDET_HD float nan_max(float a, float b) { return (a != a || b != b) ? a + b : fmaxf(a, b); }

// IEEE round-to-nearest operations that the compiler may not fuse into an FMA whatever -fmad says, so the
// spec's arithmetic stays exact even where the file is built without -fmad=false (a plugin's own build).
// -fmad=false is still passed by edgedet/cuda_build.py for any arithmetic written without these.
EDGEDET_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
EDGEDET_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
EDGEDET_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

EDGEDET_HD uint32_t bits_of(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}
EDGEDET_HD float float_of(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// float -> uint32 with the same order (ascending) for all non-NaN values
EDGEDET_HD uint32_t ordered(float f) {
    const uint32_t u = bits_of(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
EDGEDET_HD float unordered(uint32_t o) { return float_of((o & 0x80000000u) ? (o & 0x7FFFFFFFu) : ~o); }

// score_kernel's per-element work: the activated score's sort key (kSentinel: not a candidate)
EDGEDET_HD uint32_t score_key(float s, int c, int background, int activation, float thr) {
    if (activation) s = 1.0f / (1.0f + expf(-s));
    if (s != s) s = -INFINITY;
    if (s == 0.0f) s = 0.0f;  // -0.0 ranks as +0.0
    return (c != background && s > thr) ? ~ordered(s) : kSentinel;
}

__device__ __forceinline__ float threshold_of(const float* dev, float value) { return dev ? *dev : value; }

template <typename T>
__global__ void score_kernel(const T* __restrict__ scores, int nc, int num_classes, int background, int activation,
                             const float* __restrict__ thr_dev, float thr_value, uint32_t* __restrict__ keys,
                             int32_t* __restrict__ values) {
    const float thr = threshold_of(thr_dev, thr_value);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < nc; i += gridDim.x * blockDim.x) {
        keys[i] = score_key(load(scores, i), i % num_classes, background, activation, thr);
        values[i] = i;
    }
}

struct DecodeArgs {
    int num_boxes, num_classes, per_class, anchors_batch, box_coding;
    float scale[4];
};

// docs/nms.md steps 1-2 for one box, in the operation order of edgedet/nms/boxes.py
EDGEDET_HD float4 decode_box(float4 v, const float* a, const DecodeArgs& d) {
    if (a) {
        v = make_float4(v.x / d.scale[0], v.y / d.scale[1], v.z / d.scale[2], v.w / d.scale[3]);
        if (d.box_coding == 1) {
            const float cx = add_rn(mul_rn(v.x, a[2]), a[0]), cy = add_rn(mul_rn(v.y, a[3]), a[1]);
            const float w = mul_rn(expf(nan_min(v.z, kBoxClip)), a[2]), h = mul_rn(expf(nan_min(v.w, kBoxClip)), a[3]);
            v = make_float4(cx, cy, w, h);
        } else {
            v = make_float4(add_rn(a[0], v.x), add_rn(a[1], v.y), add_rn(a[2], v.z), add_rn(a[3], v.w));
        }
    }
    if (d.box_coding == 1) {
        const float hw = mul_rn(v.z, 0.5f), hh = mul_rn(v.w, 0.5f);
        v = make_float4(sub_rn(v.x, hw), sub_rn(v.y, hh), add_rn(v.x, hw), add_rn(v.y, hh));
    }
    return make_float4(nan_min(v.x, v.z), nan_min(v.y, v.w), nan_max(v.x, v.z), nan_max(v.y, v.w));
}

template <typename T>
__global__ void take_kernel(const T* __restrict__ boxes, const T* __restrict__ anchors, DecodeArgs d, int image, int m,
                            const uint32_t* __restrict__ keys, const int32_t* __restrict__ values,
                            float4* __restrict__ cand_box, float* __restrict__ cand_score, int32_t* __restrict__ cand_class,
                            int32_t* __restrict__ cand_n, int32_t* __restrict__ count) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= m) return;
    const uint32_t key = keys[r];
    const bool valid = key != kSentinel;
    // candidates are a prefix of the sorted keys: exactly one thread sees its end
    if (valid && (r == m - 1 || keys[r + 1] == kSentinel)) *count = r + 1;
    if (r == 0 && !valid) *count = 0;
    if (!valid) return;
    const int idx = values[r], n = idx / d.num_classes, c = idx - n * d.num_classes;
    const size_t row = static_cast<size_t>(image) * d.num_boxes + n;
    const size_t at = (d.per_class ? row * d.num_classes + c : row) * 4;
    const float4 raw = make_float4(load(boxes, at), load(boxes, at + 1), load(boxes, at + 2), load(boxes, at + 3));
    float a[4];
    if (d.anchors_batch) {
        const size_t arow = (static_cast<size_t>(d.anchors_batch == 1 ? 0 : image) * d.num_boxes + n) * 4;
        for (int k = 0; k < 4; ++k) a[k] = load(anchors, arow + k);
    }
    cand_box[r] = decode_box(raw, d.anchors_batch ? a : nullptr, d);
    cand_score[r] = unordered(~key);
    cand_class[r] = c;
    cand_n[r] = n;
}

// docs/nms.md step 6, operation by operation, never fused; NaN when a coordinate is NaN
EDGEDET_HD float iou_of(float4 a, float4 b) {
    const float iw = nan_max(0.0f, sub_rn(nan_min(a.z, b.z), nan_max(a.x, b.x)));
    const float ih = nan_max(0.0f, sub_rn(nan_min(a.w, b.w), nan_max(a.y, b.y)));
    const float inter = mul_rn(iw, ih);
    const float area_a = mul_rn(sub_rn(a.z, a.x), sub_rn(a.w, a.y));
    const float area_b = mul_rn(sub_rn(b.z, b.x), sub_rn(b.w, b.y));
    const float uni = sub_rn(add_rn(area_a, area_b), inter);
    return uni > 0.0f ? inter / uni : 0.0f;
}

EDGEDET_HD bool suppresses(float4 a, float4 b, float thr) { return iou_of(a, b) > thr; }  // NaN never suppresses

__global__ void mask_kernel(const float4* __restrict__ cand_box, const int32_t* __restrict__ cand_class,
                            const int32_t* __restrict__ count_dev, int col_blocks, int class_agnostic,
                            const float* __restrict__ thr_dev, float thr_value, unsigned long long* __restrict__ mask) {
    const int row_block = blockIdx.y, col_block = blockIdx.x;
    const int count = *count_dev;
    // settle reads only words at or after a row's own, and only words holding candidates
    if (col_block < row_block || col_block * 64 >= count) return;
    const float thr = threshold_of(thr_dev, thr_value);
    __shared__ float4 col_box[64];
    __shared__ int32_t col_class[64];
    const int col_start = col_block * 64, cols = min(64, count - col_start);  // >= 1
    if (threadIdx.x < cols) {
        col_box[threadIdx.x] = cand_box[col_start + threadIdx.x];
        col_class[threadIdx.x] = cand_class[col_start + threadIdx.x];
    }
    __syncthreads();
    const int i = row_block * 64 + threadIdx.x;
    if (i >= count) return;
    const float4 box = cand_box[i];
    const int32_t cls = cand_class[i];
    unsigned long long bits = 0;
    for (int t = (row_block == col_block ? threadIdx.x + 1 : 0); t < cols; ++t)
        if ((class_agnostic || col_class[t] == cls) && suppresses(box, col_box[t], thr)) bits |= 1ull << t;
    mask[static_cast<size_t>(i) * col_blocks + col_block] = bits;
}

template <typename T>
__global__ void settle_kernel(const unsigned long long* __restrict__ mask, const int32_t* __restrict__ count_dev,
                              int col_blocks, int k, int image, const float4* __restrict__ cand_box,
                              const float* __restrict__ cand_score, const int32_t* __restrict__ cand_class,
                              const int32_t* __restrict__ cand_n, int32_t* __restrict__ num_dets, T* __restrict__ det_boxes,
                              T* __restrict__ det_scores, int32_t* __restrict__ det_classes, int32_t* __restrict__ det_indices) {
    extern __shared__ unsigned long long removed[];
    __shared__ unsigned long long diagonal[64];  // word w of the rows in word w, loaded in parallel
    __shared__ int32_t fresh[64];
    __shared__ int fresh_count;
    const int count = *count_dev, words = (count + 63) / 64;
    for (int w = threadIdx.x; w < words; w += blockDim.x) removed[w] = 0;
    __syncthreads();
    const size_t out = static_cast<size_t>(image) * k;
    int kept = 0;
    for (int w = 0; w < words && kept < k; ++w) {
        if (threadIdx.x < 64) {
            const int i = w * 64 + threadIdx.x;
            diagonal[threadIdx.x] = i < count ? mask[static_cast<size_t>(i) * col_blocks + w] : 0ull;
        }
        __syncthreads();
        if (threadIdx.x == 0) {  // the sequential part: greedy within one word of 64 ranks
            unsigned long long bits = removed[w];
            int f = 0;
            for (int t = 0; t < 64 && kept + f < k; ++t) {
                if (w * 64 + t >= count) break;
                if (!(bits >> t & 1ull)) {
                    fresh[f++] = w * 64 + t;
                    bits |= diagonal[t];
                }
            }
            fresh_count = f;
        }
        __syncthreads();
        const int f = fresh_count;
        for (int j = threadIdx.x; j < f; j += blockDim.x) {
            const int i = fresh[j];
            const size_t slot = out + kept + j;
            const float4 b = cand_box[i];
            store(det_boxes, slot * 4, b.x), store(det_boxes, slot * 4 + 1, b.y);
            store(det_boxes, slot * 4 + 2, b.z), store(det_boxes, slot * 4 + 3, b.w);
            store(det_scores, slot, cand_score[i]);
            det_classes[slot] = cand_class[i];
            if (det_indices) det_indices[slot] = cand_n[i];
        }
        for (int v = w + 1 + threadIdx.x; v < words; v += blockDim.x) {
            unsigned long long acc = 0;
            for (int j = 0; j < f; ++j) acc |= mask[static_cast<size_t>(fresh[j]) * col_blocks + v];
            removed[v] |= acc;
        }
        kept += f;
        __syncthreads();  // fresh / removed are rewritten in the next round
    }
    for (int slot = kept + threadIdx.x; slot < k; slot += blockDim.x) {
        const size_t s = out + slot;
        for (int c = 0; c < 4; ++c) store(det_boxes, s * 4 + c, 0.0f);
        store(det_scores, s, 0.0f);
        det_classes[s] = 0;
        if (det_indices) det_indices[s] = -1;
    }
    if (threadIdx.x == 0) num_dets[image] = kept;
}

// -- host side -----------------------------------------------------------------------------------

bool valid(const EdgeDetNMSParams* p) {
    if (!p || p->batch < 1 || p->num_boxes < 0 || p->num_classes < 1 || p->max_output_boxes < 1 || p->top_k < 0) return false;
    if (static_cast<int64_t>(p->num_boxes) * p->num_classes > INT32_MAX) return false;
    if ((p->per_class_boxes != 0 && p->per_class_boxes != 1) || (p->box_coding != 0 && p->box_coding != 1)) return false;
    if (p->data_type != EDGEDET_NMS_FLOAT32 && p->data_type != EDGEDET_NMS_FLOAT16) return false;
    if (p->anchors_batch != 0 && p->anchors_batch != 1 && p->anchors_batch != p->batch) return false;
    if (p->anchors_batch)
        for (float s : p->box_scale)
            if (!(s != 0.0f) || s != s) return false;
    return true;
}

int candidates_m(const EdgeDetNMSParams* p) {
    const int nc = p->num_boxes * p->num_classes;
    return (p->top_k > 0 && p->top_k < nc) ? p->top_k : nc;
}

size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

struct Layout {
    size_t keys[2], values[2], box, score, cls, n, count, mask, temp, total, temp_bytes;
};

// CUB's size query launches nothing but asks the runtime for the device; without one, a bound on
// its onesweep allocations (lookback + bins, tile >= 128 items) stands in, so callers on hosts
// without a GPU still get a size (the kernels cannot run there anyway).
size_t sort_temp_bytes(int nc) {
    if (nc == 0) return 0;
    size_t bytes = 0;
    cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr);
    cub::DoubleBuffer<int32_t> values(nullptr, nullptr);
    if (cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, values, nc, 0, 32) != cudaSuccess) {
        cudaGetLastError();  // clear the error so the caller's next check does not see it
        bytes = static_cast<size_t>(8) * nc + 65536;
    }
    return bytes;
}

Layout layout(const EdgeDetNMSParams* p, bool query_cub = true) {
    const size_t nc = static_cast<size_t>(p->num_boxes) * p->num_classes, m = candidates_m(p);
    const size_t col_blocks = (m + 63) / 64;
    const size_t sizes[] = {nc * 4, nc * 4, nc * 4, nc * 4, m * 16, m * 4, m * 4, m * 4, 4, m * col_blocks * 8};
    size_t offsets[10], at = 0;
    for (int i = 0; i < 10; ++i) offsets[i] = at, at += aligned(sizes[i]);
    Layout l{{offsets[0], offsets[1]}, {offsets[2], offsets[3]}, offsets[4], offsets[5], offsets[6], offsets[7],
             offsets[8], offsets[9], at, 0, 0};
    l.temp_bytes = query_cub ? sort_temp_bytes(static_cast<int>(nc)) : 0;
    l.total = at + aligned(l.temp_bytes) + kAlign;  // slack: the workspace pointer is aligned up inside
    return l;
}

template <typename T>
int run(const EdgeDetNMSParams* p, const void* boxes, const void* scores, const void* anchors, const float* score_thr,
        const float* iou_thr, int32_t* num_dets, void* det_boxes, void* det_scores, int32_t* det_classes,
        int32_t* det_indices, char* ws, const Layout& l, cudaStream_t stream) {
    const int nc = p->num_boxes * p->num_classes, m = candidates_m(p), k = p->max_output_boxes;
    const int col_blocks = (m + 63) / 64;
    uint32_t* keys[2] = {reinterpret_cast<uint32_t*>(ws + l.keys[0]), reinterpret_cast<uint32_t*>(ws + l.keys[1])};
    int32_t* values[2] = {reinterpret_cast<int32_t*>(ws + l.values[0]), reinterpret_cast<int32_t*>(ws + l.values[1])};
    auto* cand_box = reinterpret_cast<float4*>(ws + l.box);
    auto* cand_score = reinterpret_cast<float*>(ws + l.score);
    auto* cand_class = reinterpret_cast<int32_t*>(ws + l.cls);
    auto* cand_n = reinterpret_cast<int32_t*>(ws + l.n);
    auto* count = reinterpret_cast<int32_t*>(ws + l.count);
    auto* mask = reinterpret_cast<unsigned long long*>(ws + l.mask);
    const DecodeArgs d{p->num_boxes, p->num_classes, p->per_class_boxes, p->anchors_batch, p->box_coding,
                       {p->box_scale[0], p->box_scale[1], p->box_scale[2], p->box_scale[3]}};
    const int bg = (p->background_class >= 0 && p->background_class < p->num_classes) ? p->background_class : -1;
    const T* tscores = static_cast<const T*>(scores);
    for (int b = 0; b < p->batch; ++b) {
        cudaError_t e = cudaMemsetAsync(count, 0, sizeof(int32_t), stream);
        if (e != cudaSuccess) return e;
        if (m > 0) {
            const int grid = min((nc + 255) / 256, 4096);
            score_kernel<T><<<grid, 256, 0, stream>>>(tscores + static_cast<size_t>(b) * nc, nc, p->num_classes, bg,
                                                      p->score_activation, score_thr, p->score_threshold, keys[0], values[0]);
            cub::DoubleBuffer<uint32_t> kb(keys[0], keys[1]);
            cub::DoubleBuffer<int32_t> vb(values[0], values[1]);
            size_t temp = l.temp_bytes;  // what the caller's workspace leaves; CUB refuses it if too small
            e = cub::DeviceRadixSort::SortPairs(ws + l.temp, temp, kb, vb, nc, 0, 32, stream);
            if (e != cudaSuccess) return e;
            take_kernel<T><<<(m + 255) / 256, 256, 0, stream>>>(static_cast<const T*>(boxes), static_cast<const T*>(anchors),
                                                                d, b, m, kb.Current(), vb.Current(), cand_box, cand_score,
                                                                cand_class, cand_n, count);
            mask_kernel<<<dim3(col_blocks, col_blocks), 64, 0, stream>>>(cand_box, cand_class, count, col_blocks,
                                                                          p->class_agnostic, iou_thr, p->iou_threshold, mask);
        }
        settle_kernel<T><<<1, 256, col_blocks * sizeof(unsigned long long), stream>>>(
            mask, count, col_blocks, k, b, cand_box, cand_score, cand_class, cand_n, num_dets, static_cast<T*>(det_boxes),
            static_cast<T*>(det_scores), det_classes, det_indices);
        // Peek, not Get: our launches' errors are reported without clearing an error that is not ours.
        e = cudaPeekAtLastError();
        if (e != cudaSuccess) return e;
    }
    return 0;
}

}  // namespace

extern "C" size_t edgedet_nms_workspace_size(const EdgeDetNMSParams* params) {
    if (!valid(params) || candidates_m(params) > kMaxCandidates) return 0;
    return layout(params).total;
}

extern "C" int edgedet_nms(const EdgeDetNMSParams* params, const void* boxes, const void* scores, const void* anchors,
                           const float* score_threshold_dev, const float* iou_threshold_dev, int32_t* num_dets,
                           void* det_boxes, void* det_scores, int32_t* det_classes, int32_t* det_indices, void* workspace,
                           size_t workspace_size, void* stream) {
    if (!valid(params) || candidates_m(params) > kMaxCandidates) return -1;
    // No CUB size query here (the caller asked once, in edgedet_nms_workspace_size): CUB's scratch is whatever
    // the workspace leaves after our buffers, and SortPairs itself refuses scratch that is too small.
    Layout l = layout(params, false);
    const bool need_inputs = params->num_boxes > 0;
    // CUB's scratch and the float4 boxes want 256-byte alignment, which a caller's workspace may lack
    const uintptr_t base = reinterpret_cast<uintptr_t>(workspace), skip = (kAlign - base % kAlign) % kAlign;
    if (!workspace || workspace_size < l.temp + skip || !num_dets || !det_boxes || !det_scores ||
        !det_classes || (need_inputs && (!boxes || !scores || (params->anchors_batch && !anchors))))
        return -1;
    l.temp_bytes = workspace_size - skip - l.temp;
    char* ws = static_cast<char*>(workspace) + skip;
    const auto s = static_cast<cudaStream_t>(stream);
    if (params->data_type == EDGEDET_NMS_FLOAT16)
        return run<__half>(params, boxes, scores, anchors, score_threshold_dev, iou_threshold_dev, num_dets, det_boxes,
                           det_scores, det_classes, det_indices, ws, l, s);
    return run<float>(params, boxes, scores, anchors, score_threshold_dev, iou_threshold_dev, num_dets, det_boxes,
                      det_scores, det_classes, det_indices, ws, l, s);
}
