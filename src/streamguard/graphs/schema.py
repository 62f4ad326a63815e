"""What a code graph is: the edge types (fixed ids, stored in graph files and checkpoints), ``GraphConfig``
and ``CodeGraph``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np


#: Edge type name -> id. Fixed and ordered: ids are stored in graph files and model checkpoints.
EDGE_TYPES: Mapping[str, int] = MappingProxyType(
    {
        "AST": 0,  # parent -> child
        "NEXT_TOKEN": 1,  # leaf -> next leaf in source order
        "CFG_NEXT": 2,  # statement -> its normal successor
        "CFG_TRUE": 3,  # branch condition -> taken target (if, loop body, switch case)
        "CFG_FALSE": 4,  # branch condition -> not-taken target (else, loop exit)
        "CFG_BACK": 5,  # loop back-edge (end of body / update -> loop head)
        "CFG_JUMP": 6,  # return / break / continue / goto -> target (or the function exit)
        "DFG": 7,  # last definition of a variable -> a use of it
    }
)

#: Group names accepted in ``GraphConfig.edge_types`` (individual edge names are accepted too).
EDGE_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ast": ("AST",),
        "next_token": ("NEXT_TOKEN",),
        "control_flow": ("CFG_NEXT", "CFG_TRUE", "CFG_FALSE", "CFG_BACK", "CFG_JUMP"),
        "data_flow": ("DFG",),
    }
)

OVERSIZE_POLICIES = ("truncate", "skip")


@dataclass(frozen=True)
class GraphConfig:
    """How graphs are built; stored next to the graphs so a loader can check it matches."""

    edge_types: tuple[str, ...] = ("ast", "next_token", "control_flow", "data_flow")
    max_nodes: int = 512
    oversize_policy: str = "truncate"
    token_buckets: int = 4096
    include_anonymous: bool = False

    def __post_init__(self) -> None:
        edge_types = (self.edge_types,) if isinstance(self.edge_types, str) else tuple(self.edge_types)
        object.__setattr__(self, "edge_types", edge_types)
        unknown = [name for name in edge_types if name not in EDGE_GROUPS and name not in EDGE_TYPES]
        if unknown:
            raise ValueError(
                f"unknown edge type(s) {unknown}; use groups {list(EDGE_GROUPS)} or names {list(EDGE_TYPES)}"
            )
        if self.oversize_policy not in OVERSIZE_POLICIES:
            raise ValueError(f"oversize_policy must be one of {OVERSIZE_POLICIES}, got {self.oversize_policy!r}")
        if int(self.max_nodes) < 2:
            raise ValueError(f"max_nodes must be >= 2 (one AST node and the exit node), got {self.max_nodes}")
        if int(self.token_buckets) < 1:
            raise ValueError(f"token_buckets must be >= 1, got {self.token_buckets}")
        object.__setattr__(self, "max_nodes", int(self.max_nodes))
        object.__setattr__(self, "token_buckets", int(self.token_buckets))
        object.__setattr__(self, "include_anonymous", bool(self.include_anonymous))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GraphConfig:
        """Build from parameters, refusing typos rather than silently using a default."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown GraphConfig key(s) {unknown}; valid keys: {valid}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (edge_types as a list)."""
        values = dataclasses.asdict(self)
        values["edge_types"] = list(self.edge_types)
        return values

    def enabled_edge_ids(self) -> frozenset[int]:
        """Edge type ids selected by ``edge_types`` (groups expanded)."""
        names = [member for name in self.edge_types for member in EDGE_GROUPS.get(name, (name,))]
        return frozenset(EDGE_TYPES[name] for name in names)


@dataclass(eq=False)
class CodeGraph:
    """One function's graph as flat numpy arrays (cheap to store, batch and ship to workers)."""

    node_type: np.ndarray  # int32 [N]: tree-sitter kind id, ERROR_TYPE_ID, or EXIT_TYPE_ID
    node_token: np.ndarray  # int32 [N]: crc32 bucket (1..token_buckets) of the token text, 0 if none
    edge_index: np.ndarray  # int64 [2, E]: source row, target row; every value < N
    edge_type: np.ndarray  # int8 [E]: values of EDGE_TYPES
    num_error_nodes: int = 0  # ERROR + MISSING nodes in the parse
    truncated: bool = False
    skipped: bool = False
    config: GraphConfig | None = field(default=None, repr=False)

    @property
    def num_nodes(self) -> int:
        return int(self.node_type.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_type.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodeGraph):
            return NotImplemented
        return (
            np.array_equal(self.node_type, other.node_type)
            and np.array_equal(self.node_token, other.node_token)
            and np.array_equal(self.edge_index, other.edge_index)
            and np.array_equal(self.edge_type, other.edge_type)
            and (self.num_error_nodes, self.truncated, self.skipped) == (other.num_error_nodes, other.truncated, other.skipped)
        )

    def edges_of(self, name: str) -> set[tuple[int, int]]:
        """(source, target) pairs of one edge type: handy in tests and when debugging."""
        mask = self.edge_type == EDGE_TYPES[name]
        return set(zip(self.edge_index[0, mask].tolist(), self.edge_index[1, mask].tolist()))
_CFG_EDGE_IDS = frozenset(EDGE_TYPES[name] for name in EDGE_GROUPS["control_flow"])
_AST, _NEXT_TOKEN, _CFG_NEXT, _CFG_TRUE, _CFG_FALSE, _CFG_BACK, _CFG_JUMP, _DFG = (
    EDGE_TYPES[name] for name in ("AST", "NEXT_TOKEN", "CFG_NEXT", "CFG_TRUE", "CFG_FALSE", "CFG_BACK", "CFG_JUMP", "DFG")
)
