"""Names that tie the EdgeDetNMS ONNX node, its local function and the TensorRT plugin together.

The ONNX parser of TensorRT looks a custom node up as
getCreator(op_type, node attr plugin_version (default "1"), node attr plugin_namespace (default
"")); from TensorRT 10.10 the node's domain is also tried as the namespace. The node carries both
attributes explicitly so every supported TensorRT version (10.3+) finds the plugin.
"""

OP_TYPE = "EdgeDetNMS"
OP_DOMAIN = "edgedet"  # ONNX domain of the node and of its local function
PLUGIN_NAME = OP_TYPE
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "edgedet"
PLUGIN_LIBRARY = "libedgedet_nms_plugin.so"

# Node attributes (and plugin fields) naming the optional inputs the node passes, so that its inputs
# are contiguous - boxes, scores[, anchors][, score_threshold[, iou_threshold]] - and each one's
# role is stated, not guessed: an empty input name becomes a null tensor in TensorRT's ONNX parser,
# and its local-function importer needs exactly as many node inputs as formal inputs.
HAS_ANCHORS = "has_anchors"  # 0 or 1
THRESHOLD_INPUTS = (  # 0, 1 (score_threshold) or 2 (score_threshold, iou_threshold)
    "threshold_inputs"
)
INPUT_ROLE_FIELDS = (HAS_ANCHORS, THRESHOLD_INPUTS)

# Most candidates per image (M = min(top_k or N*C, N*C)) the CUDA kernels, and so the plugin, take:
# the IoU bitmask is M*M/8 bytes. EDGEDET_NMS_MAX_CANDIDATES in edgedet/csrc/nms_kernels.h (a test
# keeps them equal).
PLUGIN_MAX_CANDIDATES = 65536
