// The EdgeDetNMS plugin's host logic, run without TensorRT's libraries: this program plays TensorRT's part
// (creator lookup, fields as the ONNX parser passes them, format negotiation, configurePlugin, workspace,
// serialisation round trip, onShapeChange, enqueue) against the plugin compiled from
// edgedet/csrc/plugin/edgedet_nms_plugin.cpp and the TensorRT headers it is built with.
//
// Two builds of the same file:
//   default                 the kernels are stubs that record what they are given (CPU, no GPU needed):
//                           tests/edgedet/trt/test_plugin_build.py runs it and expects "OK" last.
//   -DEDGEDET_REAL_KERNELS  linked with edgedet/csrc/nms_kernels.cu; runs every input combination on the GPU
//                           and writes inputs and outputs under argv[1] for benchmarks/gpu/plugin_harness.py,
//                           which compares them with the oracle (edgedet/nms/reference.py).
// Input combinations (item 2 of issue 12): anchors yes/no x threshold inputs yes/no x boxes [B,N,4] / [B,N,C,4],
// with the input roles stated by the has_anchors / threshold_inputs fields as the ONNX node carries them.

#include "NvInfer.h"
#include "nms_kernels.h"

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

using namespace nvinfer1;
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" void setLoggerFinder(ILoggerFinder* finder);

#define CHECK(c)                                                                                                       \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(c))                                                                                                      \
        {                                                                                                              \
            std::printf("FAIL line %d: %s\n", __LINE__, #c);                                                           \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

// ---------------------------------------------------------------- TensorRT's side: logger, descriptors, fields

struct Logger : public ILogger
{
    std::string last;
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
            last = msg;
        std::printf("LOG %d %s\n", static_cast<int>(severity), msg);
    }
};
struct Finder : public ILoggerFinder
{
    Logger logger;
    ILogger* findLogger() override
    {
        return &logger;
    }
};
static Finder gFinder;

static Dims shape(std::initializer_list<int64_t> v)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(v.size());
    int i = 0;
    for (auto x : v)
        d.d[i++] = x;
    return d;
}
static DynamicPluginTensorDesc desc(Dims d, DataType t, Dims max)
{
    DynamicPluginTensorDesc r{};
    r.desc.dims = d;
    r.desc.type = t;
    r.desc.format = TensorFormat::kLINEAR;
    r.min = d;
    r.opt = d;
    r.max = max;
    return r;
}

//! One input combination: the node's inputs and fields as exporters/nms/edgedet_op.py writes them.
struct Combo
{
    bool anchors, thresholds, perClass;
    std::string name() const
    {
        return std::string(anchors ? "anchors" : "noanchors") + "_" + (thresholds ? "thresholds" : "fields") + "_"
            + (perClass ? "perclass" : "shared");
    }
};

struct Node
{
    // attribute storage the fields point into
    float scoreThr{0.3F}, iouThr{0.5F}, scale[4]{10.F, 10.F, 5.F, 5.F};
    int32_t k{20}, topk{100}, coding{0}, hasAnchors{0}, thresholdInputs{0};
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};
    std::vector<DynamicPluginTensorDesc> io;  // inputs then the 4 outputs
    int32_t nbInputs{0};

    Node(Combo const& c, int64_t b, int64_t maxB, int64_t n, int64_t cls, bool stateRoles, DataType t = DataType::kFLOAT)
    {
        coding = c.anchors ? 1 : 0;
        hasAnchors = c.anchors ? 1 : 0;
        thresholdInputs = c.thresholds ? 2 : 0;
        fields = {PluginField("score_threshold", &scoreThr, PluginFieldType::kFLOAT32, 1),
            PluginField("iou_threshold", &iouThr, PluginFieldType::kFLOAT32, 1),
            PluginField("max_output_boxes", &k, PluginFieldType::kINT32, 1),
            PluginField("top_k", &topk, PluginFieldType::kINT32, 1),
            PluginField("box_coding", &coding, PluginFieldType::kINT32, 1),
            PluginField("box_scale", scale, PluginFieldType::kFLOAT32, 4)};
        if (stateRoles)
        {
            fields.emplace_back("has_anchors", &hasAnchors, PluginFieldType::kINT32, 1);
            fields.emplace_back("threshold_inputs", &thresholdInputs, PluginFieldType::kINT32, 1);
        }
        fc.nbFields = static_cast<int32_t>(fields.size());
        fc.fields = fields.data();
        io.push_back(c.perClass ? desc(shape({b, n, cls, 4}), t, shape({maxB, n, cls, 4}))
                                : desc(shape({b, n, 4}), t, shape({maxB, n, 4})));
        io.push_back(desc(shape({b, n, cls}), t, shape({maxB, n, cls})));
        if (c.anchors)
            io.push_back(desc(shape({1, n, 4}), t, shape({1, n, 4})));
        if (c.thresholds)
        {
            io.push_back(desc(shape({1}), DataType::kFLOAT, shape({1})));
            io.push_back(desc(shape({}), DataType::kFLOAT, shape({})));
        }
        nbInputs = static_cast<int32_t>(io.size());
        io.push_back(desc(shape({b, 1}), DataType::kINT32, shape({maxB, 1})));
        io.push_back(desc(shape({b, k, 4}), t, shape({maxB, k, 4})));
        io.push_back(desc(shape({b, k}), t, shape({maxB, k})));
        io.push_back(desc(shape({b, k}), DataType::kINT32, shape({maxB, k})));
    }
};

struct Views
{
    IPluginV3* plugin;
    IPluginV3OneBuild* build;
    IPluginV3OneRuntime* run;
};
static Views views(IPluginV3* p)
{
    return {p, static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD)),
        static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME))};
}

static IPluginCreatorV3One* creator()
{
    int32_t n = 0;
    IPluginCreatorInterface* const* list = getCreators(n);
    return n == 1 ? static_cast<IPluginCreatorV3One*>(list[0]) : nullptr;
}

//! Build phase as TensorRT runs it, then a runtime-phase plugin from the serialised fields (onShapeChange done).
//! Returns the runtime plugin (nullptr on a failed step) and the workspace TensorRT would allocate.
static IPluginV3* buildAndDeserialize(Node& node, size_t& workspace)
{
    IPluginCreatorV3One* c = creator();
    IPluginV3* built = c->createPlugin("nms", &node.fc, TensorRTPhase::kBUILD);
    if (built == nullptr)
        return nullptr;
    Views v = views(built);
    DynamicPluginTensorDesc* in = node.io.data();
    DynamicPluginTensorDesc* out = in + node.nbInputs;
    bool ok = v.build->configurePlugin(in, node.nbInputs, out, 4) == 0;
    for (int pos = 0; ok && pos < node.nbInputs + 4; ++pos)
        ok = v.build->supportsFormatCombination(pos, in, node.nbInputs, 4);
    workspace = ok ? v.build->getWorkspaceSize(in, node.nbInputs, out, 4) : 0;
    IPluginV3* restored = ok ? c->createPlugin("nms", v.run->getFieldsToSerialize(), TensorRTPhase::kRUNTIME) : nullptr;
    delete built;
    if (restored == nullptr)
        return nullptr;
    std::vector<PluginTensorDesc> rin, rout;
    for (int i = 0; i < node.nbInputs; ++i)
        rin.push_back(in[i].desc);
    for (int i = 0; i < 4; ++i)
        rout.push_back(out[i].desc);
    if (views(restored).run->onShapeChange(rin.data(), node.nbInputs, rout.data(), 4) != 0)
    {
        delete restored;
        return nullptr;
    }
    return restored;
}

static std::vector<Combo> combos()
{
    std::vector<Combo> out;
    for (bool a : {false, true})
        for (bool t : {false, true})
            for (bool pc : {false, true})
                out.push_back({a, t, pc});
    return out;
}

#ifndef EDGEDET_REAL_KERNELS
// ================================================================ stub kernels (CPU)

static EdgeDetNMSParams gLast;
static void const* gAnchors;
static float const* gScoreThr;
static float const* gIouThr;
static size_t gWorkspace;
static int gSizeQueries;  // edgedet_nms_workspace_size calls (the real one asks CUB each time)

extern "C" size_t edgedet_nms_workspace_size(EdgeDetNMSParams const* p)
{
    ++gSizeQueries;
    int64_t const nc = static_cast<int64_t>(p->num_boxes) * p->num_classes;
    int64_t const m = p->top_k > 0 && p->top_k < nc ? p->top_k : nc;
    return m > EDGEDET_NMS_MAX_CANDIDATES ? 0 : 1000 + p->batch;  // 0 beyond the limit, as the real one
}
extern "C" int edgedet_nms(EdgeDetNMSParams const* p, void const*, void const*, void const* anchors, float const* st,
    float const* it, int32_t*, void*, void*, int32_t*, int32_t*, void*, size_t ws, void*)
{
    gLast = *p;
    gAnchors = anchors;
    gScoreThr = st;
    gIouThr = it;
    gWorkspace = ws;
    return 0;
}

//! Every combination, roles stated (as the node has them) or not (ranks): the kernels get the right pointers.
static int combinationsReachTheKernels()
{
    for (Combo const& c : combos())
        for (bool stated : {true, false})
        {
            Node node(c, 2, 8, 100, 3, stated);
            size_t workspace = 0;
            IPluginV3* p = buildAndDeserialize(node, workspace);
            CHECK(p != nullptr);
            CHECK(workspace == 1008);  // sized for the profile's max batch
            std::vector<PluginTensorDesc> in, out;
            for (int i = 0; i < node.nbInputs; ++i)
                in.push_back(node.io[i].desc);
            for (int i = 0; i < 4; ++i)
                out.push_back(node.io[node.nbInputs + i].desc);
            char bufs[9][8];
            void const* inputs[5] = {bufs[0], bufs[1], bufs[2], bufs[3], bufs[4]};
            void* outputs[4] = {bufs[5], bufs[6], bufs[7], bufs[8]};
            char ws[16];
            gSizeQueries = 0;
            CHECK(views(p).run->enqueue(in.data(), out.data(), inputs, outputs, ws, nullptr) == 0);
            CHECK(gSizeQueries == 0);  // the size was asked once, in onShapeChange
            CHECK(gWorkspace == 1002);  // for the enqueued batch (2)
            CHECK(gLast.batch == 2 && gLast.num_boxes == 100 && gLast.num_classes == 3);
            CHECK(gLast.per_class_boxes == (c.perClass ? 1 : 0) && gLast.box_coding == (c.anchors ? 1 : 0));
            CHECK(gLast.anchors_batch == (c.anchors ? 1 : 0) && gAnchors == (c.anchors ? bufs[2] : nullptr));
            int const t = c.anchors ? 3 : 2;
            CHECK(gScoreThr == (c.thresholds ? reinterpret_cast<float const*>(bufs[t]) : nullptr));
            CHECK(gIouThr == (c.thresholds ? reinterpret_cast<float const*>(bufs[t + 1]) : nullptr));
            CHECK(gLast.score_threshold == 0.3F && gLast.iou_threshold == 0.5F && gLast.max_output_boxes == 20);
            std::printf("COMBO %s %s ok\n", c.name().c_str(), stated ? "stated" : "ranks");
            delete p;
        }
    return 0;
}

//! Roles that disagree with the inputs are refused at build time with a message, not at enqueue.
static int statedRolesMustMatch()
{
    Node node({false, true, false}, 2, 8, 100, 3, true);
    node.thresholdInputs = 1;  // says one threshold input, the node has two
    size_t workspace = 0;
    gFinder.logger.last.clear();
    CHECK(buildAndDeserialize(node, workspace) == nullptr);
    Node anchors({true, false, false}, 2, 8, 100, 3, true);
    anchors.hasAnchors = 0;  // says no anchors: the [1,N,4] input would be taken for a threshold
    CHECK(buildAndDeserialize(anchors, workspace) == nullptr);
    return 0;
}

//! More candidates than the kernels take: configurePlugin fails and says so (no engine that fails every enqueue).
static int tooManyCandidatesFailAtBuild()
{
    Node node({false, false, false}, 1, 1, 8400, 80, true);
    node.topk = 0;  // no limit: 672,000 candidates
    IPluginV3* built = creator()->createPlugin("nms", &node.fc, TensorRTPhase::kBUILD);
    CHECK(built != nullptr);
    gFinder.logger.last.clear();
    CHECK(views(built).build->configurePlugin(node.io.data(), node.nbInputs, node.io.data() + node.nbInputs, 4) != 0);
    CHECK(gFinder.logger.last.find("672000 candidates") != std::string::npos);
    CHECK(gFinder.logger.last.find("--top-k 65536") != std::string::npos);
    delete built;
    node.topk = 65536;  // at the limit: accepted
    built = creator()->createPlugin("nms", &node.fc, TensorRTPhase::kBUILD);
    CHECK(views(built).build->configurePlugin(node.io.data(), node.nbInputs, node.io.data() + node.nbInputs, 4) == 0);
    delete built;
    return 0;
}

int main()
{
    setLoggerFinder(&gFinder);
    IPluginCreatorV3One* c = creator();
    CHECK(c != nullptr && std::strcmp(c->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
    CHECK(!std::strcmp(c->getPluginName(), "EdgeDetNMS") && !std::strcmp(c->getPluginVersion(), "1")
        && !std::strcmp(c->getPluginNamespace(), "edgedet"));
    PluginFieldCollection const* names = c->getFieldNames();
    for (int i = 0; i < names->nbFields; ++i)
        std::printf("FIELD %s %d %d\n", names->fields[i].name, static_cast<int>(names->fields[i].type),
            names->fields[i].length);

    // what the ONNX parser passes for the node's attributes (INT -> kINT32, FLOAT(S) -> kFLOAT32, STRING -> kCHAR)
    float st = 0.3F, scale[4] = {10.F, 10.F, 5.F, 5.F};
    int32_t k = 7, cls = 1, coding = 1, hasAnchors = 1, thresholds = 2;
    int64_t topk = 50;  // a wider integer, as a Python caller may pass
    PluginField f[] = {PluginField("score_threshold", &st, PluginFieldType::kFLOAT32, 1),
        PluginField("max_output_boxes", &k, PluginFieldType::kINT32, 1),
        PluginField("top_k", &topk, PluginFieldType::kINT64, 1),
        PluginField("class_agnostic", &cls, PluginFieldType::kINT32, 1),
        PluginField("box_coding", &coding, PluginFieldType::kINT32, 1),
        PluginField("box_scale", scale, PluginFieldType::kFLOAT32, 4),
        PluginField("has_anchors", &hasAnchors, PluginFieldType::kINT32, 1),
        PluginField("threshold_inputs", &thresholds, PluginFieldType::kINT32, 1),
        PluginField("plugin_version", "1", PluginFieldType::kCHAR, 1),
        PluginField("plugin_namespace", "edgedet", PluginFieldType::kCHAR, 7)};
    PluginFieldCollection fc{10, f};
    IPluginV3* plugin = c->createPlugin("nms", &fc, TensorRTPhase::kBUILD);
    CHECK(plugin != nullptr);
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    Views v = views(plugin);
    CHECK(!std::strcmp(core->getPluginName(), "EdgeDetNMS") && !std::strcmp(core->getPluginNamespace(), "edgedet"));
    CHECK(v.build->getNbOutputs() == 4);

    DataType in2[] = {DataType::kHALF, DataType::kHALF}, out4[4];
    CHECK(v.build->getOutputDataTypes(out4, 4, in2, 2) == 0);
    CHECK(out4[0] == DataType::kINT32 && out4[1] == DataType::kHALF && out4[2] == DataType::kHALF
        && out4[3] == DataType::kINT32);

    // boxes [B,N,C,4], scores [B,N,C], anchors [1,N,4], score_threshold [1], iou_threshold [] ; B dynamic up to 8
    DynamicPluginTensorDesc io[] = {desc(shape({2, 100, 3, 4}), DataType::kHALF, shape({8, 100, 3, 4})),
        desc(shape({2, 100, 3}), DataType::kHALF, shape({8, 100, 3})),
        desc(shape({1, 100, 4}), DataType::kHALF, shape({1, 100, 4})), desc(shape({1}), DataType::kFLOAT, shape({1})),
        desc(shape({}), DataType::kFLOAT, shape({})), desc(shape({2, 1}), DataType::kINT32, shape({8, 1})),
        desc(shape({2, 7, 4}), DataType::kHALF, shape({8, 7, 4})), desc(shape({2, 7}), DataType::kHALF, shape({8, 7})),
        desc(shape({2, 7}), DataType::kINT32, shape({8, 7}))};
    for (int pos = 0; pos < 9; ++pos)
        CHECK(v.build->supportsFormatCombination(pos, io, 5, 4));
    io[1].desc.type = DataType::kFLOAT;
    CHECK(!v.build->supportsFormatCombination(1, io, 5, 4));
    io[1].desc.type = DataType::kHALF;
    io[3].desc.type = DataType::kHALF;
    CHECK(!v.build->supportsFormatCombination(3, io, 5, 4));
    io[3].desc.type = DataType::kFLOAT;
    io[5].desc.type = DataType::kFLOAT;
    CHECK(!v.build->supportsFormatCombination(5, io, 5, 4));
    io[5].desc.type = DataType::kINT32;
    io[0].desc.format = TensorFormat::kCHW32;
    CHECK(!v.build->supportsFormatCombination(0, io, 5, 4));
    io[0].desc.format = TensorFormat::kLINEAR;
    CHECK(v.build->configurePlugin(io, 5, io + 5, 4) == 0);
    CHECK(v.build->getWorkspaceSize(io, 5, io + 5, 4) == 1008);  // sized for the profile's max batch
    DynamicPluginTensorDesc bad = io[2];
    io[2].max = shape({1, 99, 4});
    CHECK(v.build->getWorkspaceSize(io, 5, io + 5, 4) == 0);  // anchors disagree with N
    io[2] = bad;

    // serialisation round trip into a runtime-phase plugin
    PluginFieldCollection const* ser = v.run->getFieldsToSerialize();
    CHECK(ser->nbFields == names->nbFields);
    IPluginV3* restored = c->createPlugin("nms", ser, TensorRTPhase::kRUNTIME);
    CHECK(restored != nullptr);
    auto* rrun = views(restored).run;
    PluginTensorDesc in[5], out[4];
    for (int i = 0; i < 5; ++i)
        in[i] = io[i].desc;
    for (int i = 0; i < 4; ++i)
        out[i] = io[5 + i].desc;
    CHECK(rrun->onShapeChange(in, 5, out, 4) == 0);
    char bufs[9][8];
    void const* inputs[5] = {bufs[0], bufs[1], bufs[2], bufs[3], bufs[4]};
    void* outputs[4] = {bufs[5], bufs[6], bufs[7], bufs[8]};
    char workspace[16];
    CHECK(rrun->enqueue(in, out, inputs, outputs, workspace, nullptr) == 0);
    CHECK(gLast.batch == 2 && gLast.num_boxes == 100 && gLast.num_classes == 3 && gLast.per_class_boxes == 1);
    CHECK(gLast.anchors_batch == 1 && gLast.data_type == EDGEDET_NMS_FLOAT16 && gLast.max_output_boxes == 7);
    CHECK(gLast.top_k == 50 && gLast.class_agnostic == 1 && gLast.box_coding == 1 && gLast.background_class == -1);
    CHECK(gLast.box_scale[0] == 10.F && gLast.box_scale[3] == 5.F && gLast.score_threshold == 0.3F
        && gLast.iou_threshold == 0.45F);
    CHECK(gAnchors == bufs[2] && gScoreThr == (float const*) bufs[3] && gIouThr == (float const*) bufs[4]
        && gWorkspace == 1002);
    // the roles travel with the serialised fields: two inputs no longer match has_anchors=1, threshold_inputs=2
    CHECK(rrun->onShapeChange(in, 2, out, 4) != 0);

    // invalid values are refused at creation
    float iou = 1.5F;
    PluginField badf[] = {PluginField("iou_threshold", &iou, PluginFieldType::kFLOAT32, 1)};
    PluginFieldCollection badc{1, badf};
    CHECK(c->createPlugin("nms", &badc, TensorRTPhase::kBUILD) == nullptr);
    PluginField shortf[] = {PluginField("box_scale", scale, PluginFieldType::kFLOAT32, 2)};
    PluginFieldCollection shortc{1, shortf};
    CHECK(c->createPlugin("nms", &shortc, TensorRTPhase::kBUILD) == nullptr);
    int32_t three = 3;
    PluginField rolef[] = {PluginField("threshold_inputs", &three, PluginFieldType::kINT32, 1)};
    PluginFieldCollection rolec{1, rolef};
    CHECK(c->createPlugin("nms", &rolec, TensorRTPhase::kBUILD) == nullptr);

    IPluginV3* cloned = plugin->clone();
    CHECK(cloned != nullptr && cloned != plugin);
    delete cloned;
    delete restored;
    delete plugin;

    if (combinationsReachTheKernels() != 0 || statedRolesMustMatch() != 0 || tooManyCandidatesFailAtBuild() != 0)
        return 1;
    std::printf("OK\n");
    return 0;
}

#else
// ================================================================ real kernels on the GPU

#include <cuda_runtime_api.h>

#define CUDA_CHECK(call)                                                                                               \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess)                                                                                         \
        {                                                                                                              \
            std::printf("FAIL line %d: %s: %s\n", __LINE__, #call, cudaGetErrorString(e_));                            \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

//! Deterministic inputs (a small LCG), so the Python side can also read them back from the files written.
struct Lcg
{
    uint32_t s;
    float next()
    {
        s = s * 1664525u + 1013904223u;
        return static_cast<float>(s >> 8) / 16777216.F;
    }
};

template <typename T>
static int toDevice(std::vector<T> const& host, void*& dev)
{
    CUDA_CHECK(cudaMalloc(&dev, host.size() * sizeof(T) + 1));
    CUDA_CHECK(cudaMemcpy(dev, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    return 0;
}

template <typename T>
static bool save(std::string const& path, std::vector<T> const& v)
{
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr)
        return false;
    bool ok = std::fwrite(v.data(), sizeof(T), v.size(), f) == v.size();
    return std::fclose(f) == 0 && ok;
}

static int runCombo(Combo const& c, std::string const& dir)
{
    int64_t const b = 2, n = 300, cls = 4;
    Node node(c, b, b, n, cls, true);
    size_t workspace = 0;
    IPluginV3* p = buildAndDeserialize(node, workspace);
    CHECK(p != nullptr && workspace > 0);
    Lcg rng{static_cast<uint32_t>(c.anchors * 4 + c.thresholds * 2 + c.perClass + 1)};
    size_t const boxCount = static_cast<size_t>(b * n * (c.perClass ? cls : 1) * 4);
    std::vector<float> boxes(boxCount), scores(static_cast<size_t>(b * n * cls)), anchors, thr{0.2F, 0.4F};
    for (size_t i = 0; i < boxes.size(); i += 4)
    {
        if (c.anchors)  // centre-size deltas
            for (int j = 0; j < 4; ++j)
                boxes[i + j] = rng.next() * 4.F - 2.F;
        else  // corners
        {
            float x = rng.next() * 100.F, y = rng.next() * 100.F;
            boxes[i] = x, boxes[i + 1] = y, boxes[i + 2] = x + 5.F + rng.next() * 30.F, boxes[i + 3] = y + 5.F + rng.next() * 30.F;
        }
    }
    for (float& s : scores)
        s = rng.next();
    if (c.anchors)
        for (int64_t i = 0; i < n; ++i)  // centre-size anchors (cx, cy, w, h)
            anchors.insert(anchors.end(), {rng.next() * 100.F, rng.next() * 100.F, 8.F + rng.next() * 24.F, 8.F + rng.next() * 24.F});
    std::vector<std::vector<float> const*> hostInputs{&boxes, &scores};
    std::vector<float> const scoreThr{thr[0]}, iouThr{thr[1]};
    if (c.anchors)
        hostInputs.push_back(&anchors);
    if (c.thresholds)
        hostInputs.insert(hostInputs.end(), {&scoreThr, &iouThr});
    std::vector<void*> dev;
    for (auto const* h : hostInputs)
    {
        void* d = nullptr;
        CHECK(toDevice(*h, d) == 0);
        dev.push_back(d);
    }
    int32_t const k = node.k;
    size_t const outSizes[4] = {static_cast<size_t>(b) * 4, static_cast<size_t>(b * k * 4) * 4,
        static_cast<size_t>(b * k) * 4, static_cast<size_t>(b * k) * 4};
    void* outputs[4];
    for (int i = 0; i < 4; ++i)
    {
        CUDA_CHECK(cudaMalloc(&outputs[i], outSizes[i]));
        CUDA_CHECK(cudaMemset(outputs[i], 0xAB, outSizes[i]));  // garbage: every value must be written
    }
    void* ws = nullptr;
    CUDA_CHECK(cudaMalloc(&ws, workspace + 1));
    CUDA_CHECK(cudaMemset(ws, 0xCD, workspace + 1));
    cudaStream_t stream{};
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::vector<PluginTensorDesc> in, out;
    for (int i = 0; i < node.nbInputs; ++i)
        in.push_back(node.io[i].desc);
    for (int i = 0; i < 4; ++i)
        out.push_back(node.io[node.nbInputs + i].desc);
    // an odd workspace address, as TensorRT's alignment is not promised to the plugin
    CHECK(views(p).run->enqueue(in.data(), out.data(), const_cast<void const* const*>(dev.data()), outputs,
              static_cast<char*>(ws) + 1, stream) == 0);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<int32_t> numDets(b), classes(static_cast<size_t>(b * k));
    std::vector<float> detBoxes(static_cast<size_t>(b * k * 4)), detScores(static_cast<size_t>(b * k));
    CUDA_CHECK(cudaMemcpy(numDets.data(), outputs[0], outSizes[0], cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(detBoxes.data(), outputs[1], outSizes[1], cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(detScores.data(), outputs[2], outSizes[2], cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(classes.data(), outputs[3], outSizes[3], cudaMemcpyDeviceToHost));
    std::string const base = dir + "/" + c.name() + ".";
    CHECK(save(base + "boxes.f32", boxes) && save(base + "scores.f32", scores) && save(base + "num_dets.i32", numDets)
        && save(base + "det_boxes.f32", detBoxes) && save(base + "det_scores.f32", detScores)
        && save(base + "det_classes.i32", classes));
    if (c.anchors)
        CHECK(save(base + "anchors.f32", anchors));
    if (c.thresholds)
        CHECK(save(base + "thresholds.f32", thr));
    std::printf("CASE %s B=%lld N=%lld C=%lld K=%d score_threshold=%g iou_threshold=%g top_k=%d box_coding=%d "
                "per_class=%d anchors=%d thresholds=%d\n",
        c.name().c_str(), static_cast<long long>(b), static_cast<long long>(n), static_cast<long long>(cls), k,
        node.scoreThr, node.iouThr, node.topk, node.coding, c.perClass ? 1 : 0, c.anchors ? 1 : 0, c.thresholds ? 1 : 0);
    for (void* x : dev)
        cudaFree(x);
    for (void* x : outputs)
        cudaFree(x);
    cudaFree(ws);
    cudaStreamDestroy(stream);
    delete p;
    return 0;
}

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::printf("usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    setLoggerFinder(&gFinder);
    for (Combo const& c : combos())
        if (runCombo(c, argv[1]) != 0)
            return 1;
    std::printf("OK\n");
    return 0;
}
#endif
