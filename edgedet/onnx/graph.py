"""Small read-only views of an ONNX graph: who produces and who consumes each tensor."""

from __future__ import annotations

import fnmatch
from collections import defaultdict, deque
from dataclasses import dataclass


@dataclass
class GraphIndex:
    """Producer and consumers of every tensor name in ``model.graph`` (top level only)."""

    producer: dict
    consumers: dict
    initializers: set
    nodes: list

    @classmethod
    def of(cls, model) -> GraphIndex:
        producer, consumers = {}, defaultdict(list)
        for node in model.graph.node:
            for out in node.output:
                producer[out] = node
            for inp in node.input:
                if inp:
                    consumers[inp].append(node)
        inits = {i.name for i in model.graph.initializer}
        inits |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
        return cls(producer, consumers, inits, list(model.graph.node))

    def downstream(self, tensors) -> list:
        """Every node that (transitively) consumes one of ``tensors``."""
        seen, order, queue = set(), [], deque(tensors)
        while queue:
            for node in self.consumers.get(queue.popleft(), []):
                if id(node) not in seen:
                    seen.add(id(node))
                    order.append(node)
                    queue.extend(node.output)
        return order

    def upstream_until(self, tensors, stop_ops) -> tuple[list, list]:
        """Walk back from ``tensors`` to the first node of an op in ``stop_ops`` on every path.

        Returns (nodes passed through, stopping nodes).
        """
        seen, passed, stops, queue = set(), [], [], deque(tensors)
        while queue:
            node = self.producer.get(queue.popleft())
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in stop_ops:
                stops.append(node)
                continue
            passed.append(node)
            queue.extend(i for i in node.input if i and i not in self.initializers)
        return passed, stops


def match_nodes(model, patterns) -> dict[str, list[str]]:
    """Node names matched by each glob pattern, tried against node name and op type."""
    out = {}
    for pattern in patterns:
        out[pattern] = [
            n.name
            for n in model.graph.node
            if fnmatch.fnmatchcase(n.name, pattern) or fnmatch.fnmatchcase(n.op_type, pattern)
        ]
    return out


def ensure_node_names(model) -> None:
    """Give every unnamed node a stable name (quantisers and reports address nodes by name)."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def toposort(model) -> None:
    """Reorder ``model.graph.node`` topologically in place (some converters append nodes at the
    end)."""
    available = (
        {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    )
    pending = list(model.graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i not in available})[:5]
            raise ValueError(f"graph has a cycle or dangling inputs: {missing}")
        ready_ids = {id(n) for n in ready}
        for n in ready:
            available.update(n.output)
        ordered.extend(ready)
        pending = [n for n in pending if id(n) not in ready_ids]
    del model.graph.node[:]
    model.graph.node.extend(ordered)
