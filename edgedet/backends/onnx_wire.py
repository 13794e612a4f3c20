"""Just enough of the ONNX protobuf format to cut a model into slices, without the onnx package.

Importing ``onnx`` costs more than importing onnxruntime itself (benchmarks/e2e.py,
load_and_first_result), and the runtime only needs to read node wiring and EdgeDetNMS attributes
and to write smaller models. Messages are read at the protobuf wire level; everything not
interpreted here (doc strings, metadata, value_info, tensor payloads) is copied through as raw
bytes. Field numbers are those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto,
AttributeProto, ValueInfoProto, TypeProto, TensorProto).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

# ModelProto
MODEL_GRAPH, MODEL_FUNCTIONS = 7, 25
# GraphProto
GRAPH_NODE, GRAPH_NAME, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_SPARSE_INITIALIZER = (
    1,
    2,
    5,
    11,
    12,
    15,
)
# NodeProto
NODE_INPUT, NODE_OUTPUT, NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 1, 2, 4, 5, 7
# AttributeProto
ATTR_NAME, ATTR_F, ATTR_I, ATTR_G, ATTR_FLOATS, ATTR_INTS, ATTR_GRAPHS = 1, 2, 3, 6, 7, 8, 11
# FunctionProto
FUNCTION_NAME, FUNCTION_DOMAIN = 1, 10
# TensorProto
(
    TENSOR_DIMS,
    TENSOR_DATA_TYPE,
    TENSOR_FLOAT_DATA,
    TENSOR_NAME,
    TENSOR_RAW_DATA,
    TENSOR_DATA_LOCATION,
) = (1, 2, 4, 8, 9, 14)
_TENSOR_DTYPES = {1: np.float32, 10: np.float16, 11: np.float64, 6: np.int32, 7: np.int64}

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes):
    """(field number, wire type, value, raw bytes of the whole field) for each field of a message.
    Values and raw bytes are memoryviews into ``buf``:
    a model's weights are never copied while parsing.
    """
    buf = buf if isinstance(buf, memoryview) else memoryview(buf)
    pos, n = 0, len(buf)
    while pos < n:
        start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire == LEN:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == FIXED32:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == FIXED64:
            value, pos = buf[pos : pos + 8], pos + 8
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos > n:
            raise WireError("truncated field")
        yield number, wire, value, buf[start:pos]


def encode_varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_len(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | LEN) + encode_varint(len(payload)) + payload


def encode_int(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | VARINT) + encode_varint(value)


@dataclass
class Node:
    raw: bytes  # the NodeProto, re-emitted unchanged
    inputs: list[str]
    outputs: list[str]
    op_type: str
    domain: str
    attributes: dict  # name -> float, int, list (floats/ints); other kinds are not read
    reads: list[str]  # inputs plus outer-scope names its subgraphs read


@dataclass
class Graph:
    name: str
    nodes: list[Node]
    initializers: dict[str, bytes]  # name -> TensorProto bytes
    inputs: list[tuple[str, bytes]]  # (name, ValueInfoProto bytes)
    outputs: list[tuple[str, bytes]]
    sparse_initializers: list[bytes] = field(default_factory=list)


@dataclass
class Model:
    # top-level fields other than graph and functions (ir_version, opset_import, ...)
    header: list[bytes]
    functions: list[tuple[str, str, bytes]]  # (domain, name, FunctionProto bytes)
    graph: Graph


def parse_model(buf: bytes) -> Model:
    header, functions, graph = [], [], None
    for number, wire, value, raw in fields(buf):
        if number == MODEL_GRAPH and wire == LEN:
            graph = parse_graph(value)
        elif number == MODEL_FUNCTIONS and wire == LEN:
            names = {
                n: v
                for n, w, v, _ in fields(value)
                if w == LEN and n in (FUNCTION_NAME, FUNCTION_DOMAIN)
            }
            domain, name = (
                bytes(names.get(k, b"")).decode() for k in (FUNCTION_DOMAIN, FUNCTION_NAME)
            )
            functions.append((domain, name, raw))
        else:
            header.append(raw)
    if graph is None:
        raise WireError("no graph in the model")
    return Model(header, functions, graph)


def parse_graph(buf: bytes) -> Graph:
    g = Graph("", [], {}, [], [])
    for number, wire, value, _raw in fields(buf):
        if wire != LEN:
            continue
        if number == GRAPH_NODE:
            g.nodes.append(parse_node(value))
        elif number == GRAPH_NAME:
            g.name = bytes(value).decode()
        elif number == GRAPH_INITIALIZER:
            g.initializers[_string_field(value, TENSOR_NAME)] = value
        elif number == GRAPH_INPUT:
            g.inputs.append((_string_field(value, 1), value))
        elif number == GRAPH_OUTPUT:
            g.outputs.append((_string_field(value, 1), value))
        elif number == GRAPH_SPARSE_INITIALIZER:
            g.sparse_initializers.append(value)
    return g


def parse_node(buf: bytes) -> Node:
    inputs, outputs, attrs, subgraphs = [], [], {}, []
    op_type = domain = ""
    for number, _wire, value, _ in fields(buf):
        if number == NODE_INPUT:
            inputs.append(bytes(value).decode())
        elif number == NODE_OUTPUT:
            outputs.append(bytes(value).decode())
        elif number == NODE_OP_TYPE:
            op_type = bytes(value).decode()
        elif number == NODE_DOMAIN:
            domain = bytes(value).decode()
        elif number == NODE_ATTRIBUTE:
            name, attr_value, graphs = _attribute(value)
            if attr_value is not None:
                attrs[name] = attr_value
            subgraphs += graphs
    reads = [n for n in inputs if n]
    for g in subgraphs:
        inner = (
            {o for node in g.nodes for o in node.outputs}
            | {n for n, _ in g.inputs}
            | set(g.initializers)
        )
        reads += [n for node in g.nodes for n in node.reads if n not in inner]
    return Node(buf, inputs, outputs, op_type, domain, attrs, reads)


def _attribute(buf: bytes):
    """(name, float | int | list | None, [subgraphs]) of an AttributeProto."""
    name, value, floats, ints, graphs = "", None, [], [], []
    for number, wire, v, _ in fields(buf):
        if number == ATTR_NAME:
            name = bytes(v).decode()
        elif number == ATTR_F and wire == FIXED32:
            value = struct.unpack("<f", v)[0]
        elif number == ATTR_I and wire == VARINT:
            value = v - (1 << 64) if v >= 1 << 63 else v
        elif number == ATTR_FLOATS:
            floats += (
                list(struct.unpack(f"<{len(v) // 4}f", v))
                if wire == LEN
                else [struct.unpack("<f", v)[0]]
            )
        elif number == ATTR_INTS:
            ints += _packed_varints(v) if wire == LEN else [v]
        elif number in (ATTR_G, ATTR_GRAPHS) and wire == LEN:
            graphs.append(parse_graph(v))
    if floats:
        value = floats
    elif ints:
        value = [i - (1 << 64) if i >= 1 << 63 else i for i in ints]
    return name, value, graphs


def _packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


def _string_field(buf: bytes, number: int) -> str:
    for n, wire, v, _ in fields(buf):
        if n == number and wire == LEN:
            return bytes(v).decode()
    return ""


def tensor_value(buf: bytes) -> np.ndarray:
    """numpy value of a TensorProto held in raw_data or float_data (what our exporters write)."""
    dims, dtype, raw, floats = [], 1, None, []
    for number, wire, v, _ in fields(buf):
        if number == TENSOR_DIMS:
            dims += _packed_varints(v) if wire == LEN else [v]
        elif number == TENSOR_DATA_TYPE:
            dtype = v
        elif number == TENSOR_RAW_DATA:
            raw = v
        elif number == TENSOR_FLOAT_DATA:
            floats += (
                list(struct.unpack(f"<{len(v) // 4}f", v))
                if wire == LEN
                else [struct.unpack("<f", v)[0]]
            )
        elif number == TENSOR_DATA_LOCATION and v == 1:
            raise WireError("tensor stored as external data")
    np_type = _TENSOR_DTYPES.get(dtype)
    if np_type is None:
        raise WireError(f"tensor data type {dtype} not handled")
    if raw is not None:
        return (
            np.frombuffer(raw, dtype=np.dtype(np_type).newbyteorder("<"))
            .astype(np_type)
            .reshape(dims)
        )
    if np_type is np.float32:
        return np.asarray(floats, np.float32).reshape(dims)
    raise WireError(f"tensor of data type {dtype} without raw_data")


def is_external(tensor: bytes) -> bool:
    """True for a TensorProto whose data lives in a separate file (data_location EXTERNAL)."""
    return any(
        n == TENSOR_DATA_LOCATION and w == VARINT and v == 1 for n, w, v, _ in fields(tensor)
    )


def value_info(name: str, elem_type: int | None = None, shape: list | None = None) -> bytes:
    """ValueInfoProto bytes: a name, and when ``elem_type`` is given a tensor type (dims: int, str
    or None)."""
    out = encode_len(1, name.encode())
    if elem_type is None:
        return out
    tensor = encode_int(1, elem_type)
    if shape is not None:
        dims = b"".join(
            encode_len(
                1,
                (
                    encode_int(1, d)
                    if isinstance(d, int)
                    else encode_len(2, d.encode())
                    if isinstance(d, str)
                    else b""
                ),
            )
            for d in shape
        )
        tensor += encode_len(2, dims)
    return out + encode_len(2, encode_len(1, tensor))


def value_info_type(buf: bytes) -> tuple[int, list | None]:
    """(elem_type, dims: int or None each; None when the shape is unknown) of a ValueInfoProto."""
    elem, dims = 0, None
    for n, _, v, _ in fields(buf):
        if n == 2:  # type
            for n2, _, tensor, _ in fields(v):
                if n2 == 1:  # tensor_type
                    for n3, w3, t, _ in fields(tensor):
                        if n3 == 1 and w3 == VARINT:
                            elem = t
                        elif n3 == 2:
                            dims = [_dim(d) for n4, _, d, _ in fields(t) if n4 == 1]
    return elem, dims


def _dim(buf: bytes) -> int | None:
    for n, wire, v, _ in fields(buf):
        if n == 1 and wire == VARINT:
            return v
    return None


def serialize(
    model: Model,
    graph_name: str,
    nodes: list[Node],
    initializers: list,
    inputs: list[bytes],
    outputs: list[bytes],
    keep_function,
) -> bytes:
    """A ModelProto with ``model``'s header, the functions ``keep_function(domain, name)`` accepts
    and a graph of the given nodes / initializers (TensorProto bytes) / inputs and outputs
    (ValueInfoProto bytes). Built as a list of pieces joined once: weights are copied a single
    time."""
    graph: list = []
    for number, items in (
        (GRAPH_NODE, [n.raw for n in nodes]),
        (GRAPH_NAME, [graph_name.encode()]),
        (GRAPH_INITIALIZER, initializers),
        (GRAPH_INPUT, inputs),
        (GRAPH_OUTPUT, outputs),
    ):
        for item in items:
            graph += [encode_varint(number << 3 | LEN) + encode_varint(len(item)), item]
    size = sum(len(piece) for piece in graph)
    functions = [raw for domain, name, raw in model.functions if keep_function(domain, name)]
    head = encode_varint(MODEL_GRAPH << 3 | LEN) + encode_varint(size)
    return b"".join([*model.header, head, *graph, *functions])
