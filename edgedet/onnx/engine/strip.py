"""Remove the EdgeDetNMS node's ONNX local function so TensorRT < 10.7 uses the plugin.

An edgedet ONNX file can carry NMS as one custom node (op_type/domain from :mod:`edgedet.nms.opdef`)
plus a model-local ``FunctionProto`` of the same name and domain whose body is made of standard ops:
any ONNX runtime executes the body. TensorRT 10.7+ prefers a registered plugin over a local function
of the same name; 10.3-10.6 inline the body, so the builder drops the function first and the parser
falls back to the plugin registry, looking the node up as getCreator(op_type, plugin_version attr,
plugin_namespace attr) - the node's domain counts as the namespace only from 10.10 (NVIDIA/TensorRT
CHANGELOG.md, 10.10.0: "Plugin fallback importer now also reads its namespace from a Node's domain
field"; 10.7.0: plugins preferred over local functions).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgedet.nms import opdef


@dataclass(frozen=True)
class NMSNodeInfo:
    """EdgeDetNMS nodes and their local function in one model."""

    nodes: tuple[str, ...]  # node names (or "#index" when unnamed)
    has_function: bool
    attribute_problems: tuple[str, ...]  # why the parser might not find the plugin


def is_nms_node(node) -> bool:
    return node.op_type == opdef.OP_TYPE and node.domain == opdef.OP_DOMAIN


def is_nms_function(fn) -> bool:
    return fn.name == opdef.OP_TYPE and fn.domain == opdef.OP_DOMAIN


def inspect_nms(model) -> NMSNodeInfo:
    """Find EdgeDetNMS nodes in the main graph and check the attributes the parser keys on."""
    nodes, problems = [], []
    for i, node in enumerate(model.graph.node):
        if not is_nms_node(node):
            continue
        label = node.name or f"#{i}"
        nodes.append(label)
        problems += _attribute_problems(node, label)
    return NMSNodeInfo(
        tuple(nodes), any(is_nms_function(f) for f in model.functions), tuple(problems)
    )


def _attribute_problems(node, label: str) -> list[str]:
    """The plugin lookup uses plugin_version (default "1") and plugin_namespace (default "")."""
    attrs = {a.name: a for a in node.attribute}
    out = []
    ns = attrs["plugin_namespace"].s.decode() if "plugin_namespace" in attrs else ""
    version = attrs["plugin_version"].s.decode() if "plugin_version" in attrs else "1"
    if ns != opdef.PLUGIN_NAMESPACE:
        out.append(
            f"node {label}: plugin_namespace is '{ns}', the plugin registers under"
            f" '{opdef.PLUGIN_NAMESPACE}' (TensorRT < 10.10 does not fall back to the node's"
            " domain)"
        )
    if version != opdef.PLUGIN_VERSION:
        out.append(
            f"node {label}: plugin_version is '{version}', the plugin is version"
            f" '{opdef.PLUGIN_VERSION}'"
        )
    return out


def strip_nms_function(model):
    """A copy of ``model`` without the EdgeDetNMS local function; the nodes and the domain's
    opset import stay (the node still uses that domain). Returns (model, removed: bool)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep = [f for f in out.functions if not is_nms_function(f)]
    removed = len(keep) != len(out.functions)
    if removed:
        del out.functions[:]
        out.functions.extend(keep)
    return out, removed
