"""YAML as pollwatch reads it (cassettes, contract files): safe tags only, and bounded work.

A safe loader still builds aliases as shared objects, so a few hundred bytes of nested aliases
(a "billion laughs" document) load at once and then explode in whatever walks the result: the
secret scan, a deep copy, JSON output. Before anything is built, the document's node graph is
measured as its readers will walk it (an alias counts as the whole node it repeats) and refused
when that is out of proportion to the text, when an alias contains itself, or when it nests
deeper than anything a recording needs.
"""

from __future__ import annotations

from typing import Any

import yaml

EXPANSION_FLOOR = 100_000
"""Nodes a document may expand to whatever its size..."""
EXPANSION_FACTOR = 10
"""...or this many times its distinct nodes, whichever is more."""
DEPTH_LIMIT = 100
"""Levels of nesting; recordings and contracts need a dozen, recursive walkers break near 1,000."""


class BoundError(yaml.MarkedYAMLError):
    """A document refused for its shape; `problem` says why, `problem_mark` where."""


def check_graph(root: yaml.Node) -> None:
    """Refuse a node graph whose expanded size, self-reference or depth is out of bounds. One
    pass over the distinct nodes (sizes memoised), without recursion."""
    measured: dict[int, tuple[int, int]] = {}  # id -> (expanded nodes, depth)
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        children = _children(node)
        if leaving:
            size = 1 + sum(measured[id(c)][0] for c in children)
            depth = 1 + max((measured[id(c)][1] for c in children), default=0)
            if depth > DEPTH_LIMIT:
                raise BoundError(problem=f"nested deeper than {DEPTH_LIMIT} levels", problem_mark=node.start_mark)
            measured[key] = (size, depth)
            on_path.discard(key)
            continue
        if key in measured:
            continue
        if key in on_path:
            raise BoundError(problem="an alias refers to a node that contains it", problem_mark=node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in measured)
    expanded, limit = measured[id(root)][0], max(EXPANSION_FLOOR, EXPANSION_FACTOR * len(measured))
    if expanded > limit:
        raise BoundError(problem=f"aliases expand {len(measured)} node(s) to {expanded:,} (more than {limit:,}; "
                                 "a billion-laughs document?)", problem_mark=root.start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class BoundedLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """yaml's safe loader (libyaml's when built) that checks the node graph before building it.
    Every YAML pollwatch reads goes through this class or a subclass."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        check_graph(node)
        return self.construct_document(node)


def load(data: bytes | str, loader: type[BoundedLoader] = BoundedLoader) -> Any:
    """The document in `data`; yaml.YAMLError (BoundError included) when it cannot or may not be built."""
    return compose(data, loader)[1]


def compose(data: bytes | str, loader: type[BoundedLoader] = BoundedLoader) -> tuple[yaml.Node | None, Any]:
    """(node graph, document) of `data`, for readers that point at lines of the text. A document
    nested too deep for the parser itself is a yaml.YAMLError too."""
    instance = loader(data)
    try:
        node = instance.get_single_node()
        if node is None:
            return None, None
        check_graph(node)
        return node, instance.construct_document(node)
    except RecursionError:
        raise BoundError(problem=f"nested deeper than {DEPTH_LIMIT} levels") from None
    finally:
        instance.dispose()
