// EdgeDetNMS TensorRT plugin (IPluginV3, TensorRT 10.3 through 11.x): a thin shell around the CUDA
// kernels of ../nms_kernels.h. Semantics: docs/nms.md; build: `edgedet plugin build` (docs/tensorrt.md).
//
// Registry key: name "EdgeDetNMS", version "1", namespace "edgedet" (edgedet/nms/opdef.py). The library
// exports getCreators() and setLoggerFinder(), the entry points IPluginRegistry::loadLibrary,
// trtexec --dynamicPlugins and IBuilderConfig::setPluginsToSerialize use (samples/trtexec/README.md).
// It also registers its creator when it is merely dlopen'ed (DeepStream via LD_PRELOAD, Triton's
// LD_PRELOAD and --backend-config=tensorrt,plugins=, trtexec --staticPlugins): see "registration at
// load time" at the end of this file, and how the two paths avoid a double registration.
// It uses TensorRT's interfaces only (virtual calls and inline header code), so it is not linked
// against libnvinfer and serves the full and the lean runtime alike, as NVIDIA's own
// version-compatible plugin library does (plugin/CMakeLists.txt: COMPILE_ONLY:tensorrt).
//
// Inputs, contiguous, in this order (no empty slots: TensorRT's ONNX parser makes an empty input name a
// null tensor):
//   0 boxes    T [B,N,4], or per-class [B,N,C,4]   (anchor deltas when anchors are given)
//   1 scores   T [B,N,C]
//   anchors    T [1,N,4] or [B,N,4]                 present when the field has_anchors is 1
//   then score_threshold, then iou_threshold       float32 scalars ([] or [1]); as many as the field
//                                                   threshold_inputs says (0, 1 or 2). Given, they
//                                                   replace the fields of the same name.
// The node states the roles in has_anchors / threshold_inputs (exporters/nms/edgedet_op.py writes both);
// without them (-1) the roles come from the ranks: anchors 3, thresholds 0 or 1.
// Outputs: num_dets int32 [B,1], det_boxes T [B,K,4], det_scores T [B,K], det_classes int32 [B,K].
// T is float32 or float16, the same for boxes, scores and anchors, and is the type of the scores.
// B may be dynamic; N and C are whatever the engine's shapes say at run time.

#include "NvInfer.h"
#include "nms_kernels.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <new>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{

constexpr char const* kPLUGIN_NAME = "EdgeDetNMS";
constexpr char const* kPLUGIN_VERSION = "1";
constexpr char const* kPLUGIN_NAMESPACE = "edgedet";
constexpr int32_t kMAX_INPUTS = 5;
constexpr int32_t kNB_OUTPUTS = 4;

// ---------------------------------------------------------------- logging (through setLoggerFinder)

std::mutex gLoggerMutex;
ILoggerFinder* gLoggerFinder{nullptr};
// Registered at load time, nobody calls setLoggerFinder: then TensorRT's global logger, the C entry point
// getLogger() of the runtime library that holds the registry (NvInferRuntime.h), when it has one.
ILogger* (*gRuntimeLogger)() noexcept {nullptr};

void logMessage(ILogger::Severity severity, std::string const& msg) noexcept
{
    try
    {
        std::lock_guard<std::mutex> lock(gLoggerMutex);
        ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger()
                                                   : (gRuntimeLogger != nullptr ? gRuntimeLogger() : nullptr);
        if (logger != nullptr)
        {
            logger->log(severity, ("EdgeDetNMS: " + msg).c_str());
        }
    }
    catch (...)
    {
    }
}

void logError(std::string const& msg) noexcept
{
    logMessage(ILogger::Severity::kERROR, msg);
}

// ---------------------------------------------------------------- attributes

// The creator's fields, named and defaulted as edgedet.nms.params.NMSParams. The ONNX parser
// passes INT attributes as kINT32 and FLOAT(S) as kFLOAT32 (one value, or four for box_scale).
// tests/edgedet/trt/test_plugin_build.py reads this table and compares it with NMSParams.
struct FieldSpec
{
    char const* name;
    PluginFieldType type;
    int32_t length;
};
// The NMSParams fields, then the two input-role fields (edgedet/nms/opdef.py INPUT_ROLE_FIELDS).
constexpr FieldSpec kFIELDS[] = {
    {"score_threshold", PluginFieldType::kFLOAT32, 1},
    {"iou_threshold", PluginFieldType::kFLOAT32, 1},
    {"max_output_boxes", PluginFieldType::kINT32, 1},
    {"top_k", PluginFieldType::kINT32, 1},
    {"background_class", PluginFieldType::kINT32, 1},
    {"score_activation", PluginFieldType::kINT32, 1},
    {"class_agnostic", PluginFieldType::kINT32, 1},
    {"box_coding", PluginFieldType::kINT32, 1},
    {"box_scale", PluginFieldType::kFLOAT32, 4},
    {"has_anchors", PluginFieldType::kINT32, 1},
    {"threshold_inputs", PluginFieldType::kINT32, 1},
};
constexpr int32_t kNB_FIELDS = sizeof(kFIELDS) / sizeof(kFIELDS[0]);

struct Attributes
{
    float score_threshold{0.25F};
    float iou_threshold{0.45F};
    int32_t max_output_boxes{100};
    int32_t top_k{1000};
    int32_t background_class{-1};
    int32_t score_activation{0};
    int32_t class_agnostic{0};
    int32_t box_coding{0};
    float box_scale[4]{1.F, 1.F, 1.F, 1.F};
    int32_t has_anchors{-1};       // -1: not stated (roles from the ranks)
    int32_t threshold_inputs{-1};  // -1: not stated

    void* slot(int32_t i) noexcept
    {
        void* slots[kNB_FIELDS] = {&score_threshold, &iou_threshold, &max_output_boxes, &top_k, &background_class,
            &score_activation, &class_agnostic, &box_coding, box_scale, &has_anchors, &threshold_inputs};
        return slots[i];
    }

    //! Empty when the values are usable, else why not (the same rules as NMSParams.__post_init__).
    std::string problem() const
    {
        if (!std::isfinite(score_threshold))
            return "score_threshold must be finite";
        if (!(iou_threshold >= 0.F && iou_threshold <= 1.F))
            return "iou_threshold must be in [0, 1]";
        if (max_output_boxes < 1)
            return "max_output_boxes must be >= 1";
        if (top_k < 0)
            return "top_k must be >= 0 (0 = no limit)";
        if (box_coding != 0 && box_coding != 1)
            return "box_coding must be 0 (corners) or 1 (centre-size)";
        for (float s : box_scale)
            if (s == 0.F || !std::isfinite(s))
                return "box_scale must be four finite non-zero numbers";
        if (has_anchors < -1 || has_anchors > 1)
            return "has_anchors must be 0 or 1";
        if (threshold_inputs < -1 || threshold_inputs > 2)
            return "threshold_inputs must be 0, 1 or 2";
        return {};
    }
};

//! One numeric element of a plugin field as double (the parser and Python callers differ in width).
bool readNumber(PluginField const& f, int32_t i, double& out) noexcept
{
    switch (f.type)
    {
    case PluginFieldType::kFLOAT32: out = static_cast<float const*>(f.data)[i]; return true;
    case PluginFieldType::kFLOAT64: out = static_cast<double const*>(f.data)[i]; return true;
    case PluginFieldType::kINT8: out = static_cast<int8_t const*>(f.data)[i]; return true;
    case PluginFieldType::kINT16: out = static_cast<int16_t const*>(f.data)[i]; return true;
    case PluginFieldType::kINT32: out = static_cast<int32_t const*>(f.data)[i]; return true;
    case PluginFieldType::kINT64: out = static_cast<double>(static_cast<int64_t const*>(f.data)[i]); return true;
    default: return false;
    }
}

//! Fill ``attrs`` from a field collection; false (and ``why``) on a malformed known field.
//! plugin_version / plugin_namespace (node attributes the parser keys on) and unknown names are ignored.
bool parseFields(PluginFieldCollection const* fc, Attributes& attrs, std::string& why)
{
    if (fc == nullptr)
        return true;
    for (int32_t k = 0; k < fc->nbFields; ++k)
    {
        PluginField const& f = fc->fields[k];
        if (f.name == nullptr)
            continue;
        int32_t idx = -1;
        for (int32_t j = 0; j < kNB_FIELDS; ++j)
            if (std::strcmp(f.name, kFIELDS[j].name) == 0)
                idx = j;
        if (idx < 0)
        {
            if (std::strcmp(f.name, "plugin_version") != 0 && std::strcmp(f.name, "plugin_namespace") != 0)
                logMessage(ILogger::Severity::kWARNING, std::string("ignoring unknown field '") + f.name + "'");
            continue;
        }
        FieldSpec const& spec = kFIELDS[idx];
        if (f.data == nullptr || f.length != spec.length)
        {
            why = std::string("field '") + spec.name + "' needs " + std::to_string(spec.length) + " value(s), got "
                + std::to_string(f.length);
            return false;
        }
        for (int32_t i = 0; i < spec.length; ++i)
        {
            double v{};
            if (!readNumber(f, i, v))
            {
                why = std::string("field '") + spec.name + "' is not numeric";
                return false;
            }
            void* dst = attrs.slot(idx);
            if (spec.type == PluginFieldType::kFLOAT32)
                static_cast<float*>(dst)[i] = static_cast<float>(v);
            else
                static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(v);
        }
    }
    why = attrs.problem();
    return why.empty();
}

// ---------------------------------------------------------------- inputs

//! The index of each optional input (-1: absent), from the role fields (or, without them, the ranks, which
//! are static in TensorRT); valid only when the inputs are exactly the ones the roles name, ranks agreeing.
struct InputLayout
{
    int32_t anchors{-1};
    int32_t scoreThreshold{-1};
    int32_t iouThreshold{-1};
    bool valid{false};
};

template <typename RankOf>
InputLayout inputLayout(Attributes const& a, int32_t nbInputs, RankOf rankOf)
{
    InputLayout layout;
    if (nbInputs < 2 || nbInputs > kMAX_INPUTS)
        return layout;
    bool const stated = a.has_anchors >= 0 || a.threshold_inputs >= 0;
    int32_t i = 2;
    if (stated ? a.has_anchors == 1 : (i < nbInputs && rankOf(i) == 3))
    {
        if (i >= nbInputs || rankOf(i) != 3)
            return layout;
        layout.anchors = i++;
    }
    int32_t const thresholds = stated ? (a.threshold_inputs > 0 ? a.threshold_inputs : 0) : nbInputs - i;
    if (thresholds > 2)
        return layout;
    for (int32_t t = 0; t < thresholds; ++t)
    {
        if (i >= nbInputs || rankOf(i) > 1)
            return layout;
        (t == 0 ? layout.scoreThreshold : layout.iouThreshold) = i++;
    }
    layout.valid = i == nbInputs;
    return layout;
}

//! The kernels' parameters for concrete input shapes; false (and ``why``) when the shapes disagree.
bool kernelParams(Attributes const& a, InputLayout const& layout, Dims const* const* dims, DataType type,
    EdgeDetNMSParams& p, std::string& why)
{
    Dims const& boxes = *dims[0];
    Dims const& scores = *dims[1];
    if (scores.nbDims != 3 || !((boxes.nbDims == 3 && boxes.d[2] == 4) || (boxes.nbDims == 4 && boxes.d[3] == 4)))
    {
        why = "boxes must be [B,N,4] or [B,N,C,4] and scores [B,N,C]";
        return false;
    }
    int64_t const b = scores.d[0], n = scores.d[1], c = scores.d[2];
    bool const perClass = boxes.nbDims == 4;
    if (boxes.d[0] != b || boxes.d[1] != n || (perClass && boxes.d[2] != c))
    {
        why = "boxes and scores disagree on B, N or C";
        return false;
    }
    int64_t anchorsBatch = 0;
    if (layout.anchors >= 0)
    {
        Dims const& an = *dims[layout.anchors];
        anchorsBatch = an.d[0];
        if (an.d[1] != n || an.d[2] != 4 || (anchorsBatch != 1 && anchorsBatch != b))
        {
            why = "anchors must be [1,N,4] or [B,N,4]";
            return false;
        }
    }
    if (b > INT32_MAX || n > INT32_MAX || c > INT32_MAX || n * c > INT32_MAX)
    {
        why = "B, N or N*C exceeds int32";
        return false;
    }
    p = EdgeDetNMSParams{};
    p.batch = static_cast<int32_t>(b);
    p.num_boxes = static_cast<int32_t>(n);
    p.num_classes = static_cast<int32_t>(c);
    p.per_class_boxes = perClass ? 1 : 0;
    p.anchors_batch = static_cast<int32_t>(anchorsBatch);
    p.data_type = type == DataType::kHALF ? EDGEDET_NMS_FLOAT16 : EDGEDET_NMS_FLOAT32;
    p.max_output_boxes = a.max_output_boxes;
    p.top_k = a.top_k;
    p.background_class = a.background_class;
    p.score_activation = a.score_activation;
    p.class_agnostic = a.class_agnostic;
    p.box_coding = a.box_coding;
    for (int32_t i = 0; i < 4; ++i)
        p.box_scale[i] = a.box_scale[i];
    p.score_threshold = a.score_threshold;
    p.iou_threshold = a.iou_threshold;
    return true;
}

bool isElementType(DataType t) noexcept
{
    return t == DataType::kFLOAT || t == DataType::kHALF;
}

// ---------------------------------------------------------------- the plugin

class EdgeDetNMSPlugin final : public IPluginV3, public IPluginV3OneCore, public IPluginV3OneBuild, public IPluginV3OneRuntime
{
public:
    explicit EdgeDetNMSPlugin(Attributes const& attrs)
        : mAttrs(attrs)
    {
    }

    // IPluginV3
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    IPluginV3* clone() noexcept override
    {
        auto* copy = new (std::nothrow) EdgeDetNMSPlugin(mAttrs);
        if (copy != nullptr)
        {
            copy->mLayout = mLayout;  // a clone must be fully initialised (IPluginV3::clone docs)
            copy->mWorkspaceSize = mWorkspaceSize;
        }
        return copy;
    }

    // IPluginV3OneCore
    AsciiChar const* getPluginName() const noexcept override
    {
        return kPLUGIN_NAME;
    }
    AsciiChar const* getPluginVersion() const noexcept override
    {
        return kPLUGIN_VERSION;
    }
    AsciiChar const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override
    {
        return kNB_OUTPUTS;
    }

    int32_t getOutputDataTypes(
        DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept override
    {
        if (nbOutputs != kNB_OUTPUTS || nbInputs < 2 || !isElementType(inputTypes[1]))
        {
            logError("scores must be float32 or float16 and the node must have 4 outputs");
            return -1;
        }
        outputTypes[0] = DataType::kINT32;
        outputTypes[1] = inputTypes[1];
        outputTypes[2] = inputTypes[1];
        outputTypes[3] = DataType::kINT32;
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
        int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept override
    {
        InputLayout const layout = inputLayout(mAttrs, nbInputs, [&](int32_t i) { return inputs[i].nbDims; });
        bool const boxesOk = inputs[0].nbDims == 3 || inputs[0].nbDims == 4;
        if (!layout.valid || !boxesOk || inputs[1].nbDims != 3 || nbOutputs != kNB_OUTPUTS)
        {
            logError(inputsProblem(nbInputs));
            return -1;
        }
        IDimensionExpr const* batch = inputs[1].d[0];
        IDimensionExpr const* k = exprBuilder.constant(mAttrs.max_output_boxes);
        outputs[0].nbDims = 2;
        outputs[0].d[0] = batch;
        outputs[0].d[1] = exprBuilder.constant(1);
        outputs[1].nbDims = 3;
        outputs[1].d[0] = batch;
        outputs[1].d[1] = k;
        outputs[1].d[2] = exprBuilder.constant(4);
        for (int32_t i = 2; i < kNB_OUTPUTS; ++i)
        {
            outputs[i].nbDims = 2;
            outputs[i].d[0] = batch;
            outputs[i].d[1] = k;
        }
        return 0;
    }

    bool supportsFormatCombination(
        int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t /*nbOutputs*/) noexcept override
    {
        // Decided from inOut[0..pos] only, as the interface requires; an input's role comes from its own rank.
        PluginTensorDesc const& d = inOut[pos].desc;
        if (d.format != TensorFormat::kLINEAR)
            return false;
        if (pos == 0)
            return isElementType(d.type);
        DataType const element = inOut[0].desc.type;
        if (pos == 1)
            return d.type == element;
        if (pos < nbInputs)
            return d.type == (d.dims.nbDims == 3 ? element : DataType::kFLOAT);
        int32_t const out = pos - nbInputs;
        return d.type == ((out == 0 || out == 3) ? DataType::kINT32 : element);
    }

    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
        int32_t nbOutputs) noexcept override
    {
        mLayout = inputLayout(mAttrs, nbInputs, [&](int32_t i) { return in[i].desc.dims.nbDims; });
        if (!mLayout.valid || nbOutputs != kNB_OUTPUTS)
        {
            logError(inputsProblem(nbInputs));
            return -1;
        }
        EdgeDetNMSParams p{};
        if (!checkShapes(in, nbInputs, &DynamicPluginTensorDesc::max, p))
            return -1;
        if (edgedet_nms_workspace_size(&p) == 0)  // the kernels refuse these shapes: say why now, not per enqueue
        {
            int64_t const nc = static_cast<int64_t>(p.num_boxes) * p.num_classes;
            int64_t const m = p.top_k > 0 && p.top_k < nc ? p.top_k : nc;
            logError(m > EDGEDET_NMS_MAX_CANDIDATES
                    ? std::to_string(m) + " candidates per image (top_k " + std::to_string(p.top_k) + ", N*C "
                        + std::to_string(nc) + ") exceed the kernels' limit of " + std::to_string(EDGEDET_NMS_MAX_CANDIDATES)
                        + "; export with --top-k " + std::to_string(EDGEDET_NMS_MAX_CANDIDATES) + " or less"
                    : std::string("the NMS kernels refuse these parameters (edgedet_nms_workspace_size is 0)"));
            return -1;
        }
        return 0;
    }

    size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override
    {
        EdgeDetNMSParams p{};
        if (!checkShapes(inputs, nbInputs, &DynamicPluginTensorDesc::max, p))
            return 0;
        return edgedet_nms_workspace_size(&p);
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(
        PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override
    {
        // The workspace size needs CUB's size query: asked here, once per shape change, not per enqueue.
        mLayout = inputLayout(mAttrs, nbInputs, [&](int32_t i) { return in[i].dims.nbDims; });
        mWorkspaceSize = 0;
        if (!mLayout.valid || nbOutputs != kNB_OUTPUTS)
        {
            logError(inputsProblem(nbInputs));
            return -1;
        }
        Dims const* dims[kMAX_INPUTS]{};
        for (int32_t i = 0; i < kMAX_INPUTS; ++i)
            dims[i] = &in[i < nbInputs ? i : 0].dims;
        EdgeDetNMSParams p{};
        std::string why;
        if (!kernelParams(mAttrs, mLayout, dims, in[1].type, p, why))
        {
            logError(why);
            return -1;
        }
        mWorkspaceSize = p.batch > 0 ? edgedet_nms_workspace_size(&p) : 0;
        return 0;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
        void* const* outputs, void* workspace, cudaStream_t stream) noexcept override
    {
        // No allocation, copy to host or synchronisation here: enqueue may be captured in a CUDA graph.
        Dims const* dims[kMAX_INPUTS]{};
        for (int32_t i = 0; i < kMAX_INPUTS; ++i)
            dims[i] = &inputDesc[i < 2 || i == mLayout.anchors ? i : 0].dims;
        EdgeDetNMSParams p{};
        std::string why;
        if (!kernelParams(mAttrs, mLayout, dims, inputDesc[1].type, p, why))
        {
            logError(why);
            return -1;
        }
        if (p.batch == 0)
            return 0;
        auto const* scoreThr = mLayout.scoreThreshold >= 0 ? static_cast<float const*>(inputs[mLayout.scoreThreshold]) : nullptr;
        auto const* iouThr = mLayout.iouThreshold >= 0 ? static_cast<float const*>(inputs[mLayout.iouThreshold]) : nullptr;
        void const* anchors = mLayout.anchors >= 0 ? inputs[mLayout.anchors] : nullptr;
        int const status = edgedet_nms(&p, inputs[0], inputs[1], anchors, scoreThr, iouThr,
            static_cast<int32_t*>(outputs[0]), outputs[1], outputs[2], static_cast<int32_t*>(outputs[3]), nullptr,
            workspace, mWorkspaceSize, static_cast<void*>(stream));
        if (status != 0)
            logError("edgedet_nms failed with status " + std::to_string(status));
        return status;
    }

    IPluginV3* attachToContext(IPluginResourceContext* /*context*/) noexcept override
    {
        return clone();  // no per-context resources: the workspace comes from TensorRT
    }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        for (int32_t i = 0; i < kNB_FIELDS; ++i)
            mSerialFields[i] = PluginField(kFIELDS[i].name, mAttrs.slot(i), kFIELDS[i].type, kFIELDS[i].length);
        mSerialCollection.nbFields = kNB_FIELDS;
        mSerialCollection.fields = mSerialFields;
        return &mSerialCollection;
    }

private:
    std::string inputsProblem(int32_t nbInputs) const
    {
        return "inputs must be boxes [B,N,4]|[B,N,C,4], scores [B,N,C], then anchors [1|B,N,4] when has_anchors is 1 "
               "and as many float32 [] or [1] thresholds as threshold_inputs says (has_anchors="
            + std::to_string(mAttrs.has_anchors) + ", threshold_inputs=" + std::to_string(mAttrs.threshold_inputs)
            + ", -1: not stated) and 4 outputs; got " + std::to_string(nbInputs) + " inputs";
    }

    //! Validate the shapes in ``member`` (e.g. ``max``) of each input and fill the kernels' parameters.
    bool checkShapes(DynamicPluginTensorDesc const* in, int32_t nbInputs, Dims DynamicPluginTensorDesc::*member,
        EdgeDetNMSParams& p) const noexcept
    {
        try
        {
            InputLayout const layout = inputLayout(mAttrs, nbInputs, [&](int32_t i) { return in[i].desc.dims.nbDims; });
            if (!layout.valid)
                return false;
            for (int32_t t : {layout.scoreThreshold, layout.iouThreshold})
            {
                Dims const& d = in[t >= 0 ? t : 0].*member;
                if (t >= 0 && !(d.nbDims == 0 || (d.nbDims == 1 && d.d[0] == 1)))
                {
                    logError("score_threshold and iou_threshold inputs must be float32 [] or [1]");
                    return false;
                }
            }
            Dims const* dims[kMAX_INPUTS]{};
            for (int32_t i = 0; i < kMAX_INPUTS; ++i)
                dims[i] = &(in[i < nbInputs ? i : 0].*member);
            std::string why;
            if (!kernelParams(mAttrs, layout, dims, in[1].desc.type, p, why))
            {
                logError(why);
                return false;
            }
            return true;
        }
        catch (...)
        {
            return false;
        }
    }

    Attributes mAttrs;
    InputLayout mLayout;
    size_t mWorkspaceSize{0};  // for the shapes of the last onShapeChange
    PluginField mSerialFields[kNB_FIELDS];
    PluginFieldCollection mSerialCollection{};
};

// ---------------------------------------------------------------- the creator

class EdgeDetNMSPluginCreator final : public IPluginCreatorV3One
{
public:
    EdgeDetNMSPluginCreator()
    {
        for (int32_t i = 0; i < kNB_FIELDS; ++i)
            mFields[i] = PluginField(kFIELDS[i].name, nullptr, kFIELDS[i].type, kFIELDS[i].length);
        mFieldCollection.nbFields = kNB_FIELDS;
        mFieldCollection.fields = mFields;
    }

    IPluginV3* createPlugin(AsciiChar const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept override
    {
        // Build phase: the ONNX node's attributes; runtime phase: what getFieldsToSerialize() stored.
        try
        {
            Attributes attrs;
            std::string why;
            if (!parseFields(fc, attrs, why))
            {
                logError(std::string("cannot create '") + (name != nullptr ? name : "?") + "': " + why);
                return nullptr;
            }
            return new EdgeDetNMSPlugin(attrs);
        }
        catch (...)
        {
            return nullptr;
        }
    }

    PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mFieldCollection;
    }
    AsciiChar const* getPluginName() const noexcept override
    {
        return kPLUGIN_NAME;
    }
    AsciiChar const* getPluginVersion() const noexcept override
    {
        return kPLUGIN_VERSION;
    }
    AsciiChar const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }

private:
    PluginField mFields[kNB_FIELDS];
    PluginFieldCollection mFieldCollection{};
};

// ---------------------------------------------------------------- registration at load time

// DeepStream (LD_PRELOAD) and Triton (LD_PRELOAD; --backend-config=tensorrt,plugins=<lib>, which the
// TensorRT backend loads with dlopen(path, RTLD_NOW | RTLD_LOCAL) and nothing else: tensorrt_backend
// src/shared_library.cc) never call getCreators(): a library they load must register its creator itself
// while it is loaded, as REGISTER_TENSORRT_PLUGIN does (NvInferRuntime.h: "The static registry object will
// be instantiated when the plugin library is loaded"). That macro calls the C function getPluginRegistry()
// exported by libnvinfer, which this library is deliberately not linked against, and a library loaded
// RTLD_LOCAL by a backend is not visible to a plain symbol lookup anyway. So the same registration is done
// here through the dynamic loader: dlopen(RTLD_NOLOAD) by soname finds a TensorRT runtime library already in
// the process whatever scope it was loaded in (the full, lean or dispatch runtime of the major version of
// the headers); when none is loaded yet (LD_PRELOAD runs before the host loads TensorRT), the full runtime
// (else the lean one) is loaded here from the library path, as linking against it would have, and the host
// later gets the same instance by soname.
//
// Both paths at once: IPluginRegistry::loadLibrary "will fail and return nullptr if any of the plugins are
// already registered" (NvInferRuntimeCommon.h, TensorRT 10.3-11.1), and it dlopens the library (running
// this registration) before it calls getCreators(). So getCreators() first withdraws the load-time
// registration and hands the creator to loadLibrary, which then owns it (deregisterLibrary works). A
// creator of the same name, version and namespace already in the registry (another copy of this library,
// e.g. the one a version-compatible plan carries) is left alone: registerCreator would refuse it ("Returns
// false if a plugin creator with the same type is already registered").

#define EDGEDET_STRINGIFY2(x) #x
#define EDGEDET_STRINGIFY(x) EDGEDET_STRINGIFY2(x)
#define EDGEDET_TRT_SO(lib) lib ".so." EDGEDET_STRINGIFY(NV_TENSORRT_MAJOR)

constexpr char const* kRUNTIME_LIBRARIES[] = {
    EDGEDET_TRT_SO("libnvinfer"), EDGEDET_TRT_SO("libnvinfer_lean"), EDGEDET_TRT_SO("libnvinfer_dispatch")};

EdgeDetNMSPluginCreator& theCreator()
{
    static EdgeDetNMSPluginCreator sCreator;
    return sCreator;
}

//! The registry the creator went into when the library was loaded; null when it was not registered then.
struct LoadTimeRegistration
{
    std::mutex mutex;
    IPluginRegistry* registry{nullptr};
};

LoadTimeRegistration& loadTimeRegistration()
{
    static LoadTimeRegistration sState;
    return sState;
}

//! A TensorRT runtime library already in the process, else the full (or, without it, the lean) runtime
//! loaded now from the library path; null without TensorRT.
void* runtimeLibrary() noexcept
{
    for (char const* soname : kRUNTIME_LIBRARIES)
    {
        if (void* handle = dlopen(soname, RTLD_NOW | RTLD_NOLOAD))
            return handle;
    }
    for (char const* soname : {kRUNTIME_LIBRARIES[0], kRUNTIME_LIBRARIES[1]})
    {
        if (void* handle = dlopen(soname, RTLD_NOW | RTLD_GLOBAL))
            return handle;
    }
    return nullptr;
}

//! Keeps this library mapped for the life of the process once its creator is in a registry that a dlclose
//! would otherwise leave pointing at unmapped code (REGISTER_TENSORRT_PLUGIN never deregisters either).
void pinThisLibrary() noexcept
{
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&runtimeLibrary), &info) != 0 && info.dli_fname != nullptr)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

__attribute__((noinline)) void registerAtLoad() noexcept
{
    try
    {
        void* runtime = runtimeLibrary();
        if (runtime == nullptr)
            return;  // no TensorRT here (the host-logic harness): getCreators() remains the only way in
        using GetRegistry = IPluginRegistry* (*)() noexcept;
        auto getRegistry = reinterpret_cast<GetRegistry>(dlsym(runtime, "getPluginRegistry"));
        {
            std::lock_guard<std::mutex> lock(gLoggerMutex);
            gRuntimeLogger = reinterpret_cast<ILogger* (*)() noexcept>(dlsym(runtime, "getLogger"));
        }
        IPluginRegistry* registry = getRegistry != nullptr ? getRegistry() : nullptr;
        if (registry == nullptr)
            return;
        if (registry->getCreator(kPLUGIN_NAME, kPLUGIN_VERSION, kPLUGIN_NAMESPACE) != nullptr)
        {
            logMessage(ILogger::Severity::kVERBOSE, "a creator of the same name, version and namespace is already "
                                                    "registered; this copy of the library does not register at load");
            return;
        }
        auto& state = loadTimeRegistration();
        std::lock_guard<std::mutex> lock(state.mutex);
        if (registry->registerCreator(theCreator(), kPLUGIN_NAMESPACE))
        {
            state.registry = registry;
            pinThisLibrary();
            logMessage(ILogger::Severity::kVERBOSE, "creator registered when the library was loaded");
        }
    }
    catch (...)
    {
    }
}

//! Runs registerAtLoad() when the loader initialises the library (the role of REGISTER_TENSORRT_PLUGIN's object).
struct LoadTimeRegistrar
{
    LoadTimeRegistrar()
    {
        registerAtLoad();
    }
};

__attribute__((used)) LoadTimeRegistrar gLoadTimeRegistrar;

} // namespace

// ---------------------------------------------------------------- library entry points

extern "C" __attribute__((visibility("default"))) IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    // Called by IPluginRegistry::loadLibrary right after its dlopen registered the creator: withdraw that
    // registration, or loadLibrary would find the creator already registered and fail.
    auto& state = loadTimeRegistration();
    {
        std::lock_guard<std::mutex> lock(state.mutex);
        if (state.registry != nullptr)
        {
            state.registry->deregisterCreator(theCreator());
            state.registry = nullptr;
        }
    }
    static IPluginCreatorInterface* const sCreators[] = {&theCreator()};
    nbCreators = 1;
    return sCreators;
}

extern "C" __attribute__((visibility("default"))) void setLoggerFinder(ILoggerFinder* finder)
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    gLoggerFinder = finder;
}
