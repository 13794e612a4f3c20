// EdgeDetNMS CUDA kernels: the C ABI shared by the ctypes tests/benchmarks and the TensorRT plugin.
//
// Semantics: docs/nms.md (the oracle is edgedet/nms/reference.py). Build with -fmad=false as the spec
// asks (edgedet/cuda_build.py does); the IoU and box-decode arithmetic also uses __fadd_rn / __fsub_rn /
// __fmul_rn, so it stays exact in a build that forgets the flag. The file needs only the CUDA toolkit
// (CUB ships with it), no TensorRT include.
//
// One call runs the whole operation for a batch on `stream`: decode + score activation + threshold,
// per-image top-k ranking (score desc, then lower flat index n*C + c), bitmask IoU suppression,
// greedy settle, gather into the padded outputs. No allocation and no synchronisation happen
// inside edgedet_nms(); the caller provides `workspace` of edgedet_nms_workspace_size() bytes.
//
// Notes for callers (implementation: nms_kernels.cu):
// - M = min(top_k or N*C, N*C) candidates per image enter NMS; M is limited to 65536 (the IoU mask is
//   M*M/8 bytes): beyond it edgedet_nms_workspace_size() returns 0 and edgedet_nms() returns -1 (use top_k).
// - The workspace is about 16*N*C + 28*M + M*M/8 bytes plus CUB's radix-sort scratch, independent of B
//   (images are processed one after another on `stream`). Any alignment: the size includes 256 bytes of
//   slack and the pointer is aligned up inside. The size comes from CUB's host-side query (no launch); on a
//   machine with no usable GPU that query fails and a documented upper bound is returned instead.
// - Thresholds: when score_threshold_dev / iou_threshold_dev are non-NULL they are read by the kernels at
//   run time (so they may change between calls or inside a captured CUDA graph); otherwise the params values.
// - Detected scores equal to -0.0 come back as +0.0 (ranking treats the two as equal, docs/nms.md step 5).
// - FP16: inputs are widened to float32, everything is computed in float32, det_boxes/det_scores are
//   rounded to half (round to nearest even) on output.
#ifndef EDGEDET_NMS_KERNELS_H
#define EDGEDET_NMS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Most candidates per image the kernels take (M, see above); the plugin and `--nms edgedet` export check it.
#define EDGEDET_NMS_MAX_CANDIDATES 65536

// Element type of boxes, scores, anchors, det_boxes and det_scores.
enum EdgeDetNMSDataType { EDGEDET_NMS_FLOAT32 = 0, EDGEDET_NMS_FLOAT16 = 1 };

typedef struct EdgeDetNMSParams {
    int32_t batch;             // B
    int32_t num_boxes;         // N
    int32_t num_classes;       // C
    int32_t per_class_boxes;   // 1: boxes are [B, N, C, 4]; 0: [B, N, 4]
    int32_t anchors_batch;     // 0: no anchors; 1: anchors [1, N, 4]; B: anchors [B, N, 4]
    int32_t data_type;         // EdgeDetNMSDataType
    int32_t max_output_boxes;  // K
    int32_t top_k;             // candidates entering NMS per image (0: no limit); the kernels use min(top_k or N*C, N*C)
    int32_t background_class;  // -1 (or outside [0, C)): none
    int32_t score_activation;  // 1: sigmoid
    int32_t class_agnostic;    // 1: suppress across classes
    int32_t box_coding;        // 0 corners, 1 centre-size
    float box_scale[4];        // anchor delta divisors
    float score_threshold;     // used when the device pointer below is NULL
    float iou_threshold;       // used when the device pointer below is NULL
} EdgeDetNMSParams;

// Bytes of scratch memory edgedet_nms() needs for these parameters (0 on invalid parameters).
size_t edgedet_nms_workspace_size(const EdgeDetNMSParams* params);

// Returns 0 on success, otherwise a cudaError_t value (launch errors) or -1 for invalid parameters.
// Device pointers: boxes, scores, anchors (NULL when anchors_batch == 0), score_threshold_dev and
// iou_threshold_dev (float32 scalars on the device; NULL: use the params fields), the outputs
// num_dets int32 [B,1], det_boxes [B,K,4], det_scores [B,K], det_classes int32 [B,K],
// det_indices int32 [B,K] (anchor index n, -1 in padding; may be NULL).
int edgedet_nms(const EdgeDetNMSParams* params, const void* boxes, const void* scores, const void* anchors,
                const float* score_threshold_dev, const float* iou_threshold_dev,
                int32_t* num_dets, void* det_boxes, void* det_scores, int32_t* det_classes, int32_t* det_indices,
                void* workspace, size_t workspace_size, void* stream);

#ifdef __cplusplus
}
#endif

#endif  // EDGEDET_NMS_KERNELS_H
