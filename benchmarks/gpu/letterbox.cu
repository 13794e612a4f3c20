// GPU letterbox: RGB uint8 HWC image -> contract input (NCHW float32 0..1 or uint8), one launch.
//
// Matches edgedet.preprocess.letterbox (OpenCV INTER_LINEAR, half-pixel centres, no antialiasing):
// dst(x, y) inside the resized region samples src at ((x - pad_x + 0.5) / scale - 0.5, ...), clamped to
// the border; outside it is pad_value. OpenCV rounds its uint8 weights to 11-bit fixed point, so values
// may differ from the CPU path by at most 1/255 (checked by tests/edgedet/test_csrc.py on a GPU).
//
// C ABI, no TensorRT include: compiled by nvcc alone (CI compiles it; the device machine runs it).
// Not part of the runtime: edgedet.preprocess letterboxes on the CPU; this kernel is measured against
// it by benchmarks/gpu/letterbox.py (wiring it into the TensorRT backend is a decision for that figure).

#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {

struct EdgedetLetterbox {
    int src_h, src_w, src_pitch;  // pitch in bytes between rows of the source
    int dst_h, dst_w;             // model input size
    int new_h, new_w;             // size of the resized image inside the canvas
    int pad_x, pad_y;             // integer offsets of the resized image
    float pad_value;              // 0..255
    int out_uint8;                // 1: uint8 NCHW 0..255, 0: float32 NCHW 0..1
};

}  // extern "C"

namespace {

__device__ __forceinline__ float texel(const uint8_t* src, int pitch, int x, int y, int c) {
    return static_cast<float>(src[y * pitch + x * 3 + c]);
}

__global__ void letterbox_kernel(const uint8_t* __restrict__ src, void* __restrict__ dst, EdgedetLetterbox p) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    if (x >= p.dst_w || y >= p.dst_h) return;
    float rgb[3] = {p.pad_value, p.pad_value, p.pad_value};
    const int rx = x - p.pad_x, ry = y - p.pad_y;
    if (rx >= 0 && ry >= 0 && rx < p.new_w && ry < p.new_h) {
        // half-pixel centre mapping per axis, as cv2.resize computes its source coordinates
        const float fx = fmaxf((rx + 0.5f) * (static_cast<float>(p.src_w) / p.new_w) - 0.5f, 0.0f);
        const float fy = fmaxf((ry + 0.5f) * (static_cast<float>(p.src_h) / p.new_h) - 0.5f, 0.0f);
        const int x0 = min(static_cast<int>(fx), p.src_w - 1), y0 = min(static_cast<int>(fy), p.src_h - 1);
        const int x1 = min(x0 + 1, p.src_w - 1), y1 = min(y0 + 1, p.src_h - 1);
        const float ax = fx - x0, ay = fy - y0;
        const uint8_t* img = src + static_cast<size_t>(b) * p.src_h * p.src_pitch;
        for (int c = 0; c < 3; ++c) {
            const float top = texel(img, p.src_pitch, x0, y0, c) * (1 - ax) + texel(img, p.src_pitch, x1, y0, c) * ax;
            const float bot = texel(img, p.src_pitch, x0, y1, c) * (1 - ax) + texel(img, p.src_pitch, x1, y1, c) * ax;
            rgb[c] = rintf(top * (1 - ay) + bot * ay);  // the CPU path stores uint8 before scaling
        }
    }
    const size_t plane = static_cast<size_t>(p.dst_h) * p.dst_w;
    const size_t base = static_cast<size_t>(b) * 3 * plane + static_cast<size_t>(y) * p.dst_w + x;
    for (int c = 0; c < 3; ++c) {
        if (p.out_uint8) static_cast<uint8_t*>(dst)[base + c * plane] = static_cast<uint8_t>(rgb[c]);
        else static_cast<float*>(dst)[base + c * plane] = rgb[c] * (1.0f / 255.0f);
    }
}

}  // namespace

extern "C" {

// Letterbox `batch` same-sized images (contiguous, each src_h x src_pitch bytes) into `dst`.
// Enqueues one kernel on `stream`; no allocation, no synchronisation. Returns a cudaError_t code.
int edgedet_letterbox(const uint8_t* src, void* dst, int batch, EdgedetLetterbox params, cudaStream_t stream) {
    if (batch <= 0 || params.dst_w <= 0 || params.dst_h <= 0 || params.new_w <= 0 || params.new_h <= 0) {
        return static_cast<int>(cudaErrorInvalidValue);
    }
    const dim3 block(32, 8);
    const dim3 grid((params.dst_w + block.x - 1) / block.x, (params.dst_h + block.y - 1) / block.y, batch);
    letterbox_kernel<<<grid, block, 0, stream>>>(src, dst, params);
    return static_cast<int>(cudaGetLastError());
}

}  // extern "C"
