"""C function -> typed code graph (AST, next-token, control flow, data flow) with tree-sitter-c.

Why this exists instead of the original builders (spec §1.4):

* node features are the grammar's own kind ids and a crc32 bucket of the token text, so they are
  identical in every process (the old ``hash() % 1000`` was salted per process and collided);
* nodes are collected by one iterative pre-order walk and every edge is built from that same node
  list, so an edge can never point past the last node (the old depth-capped walks disagreed);
* edges are typed, with Joern-like names, so a Joern backend could be swapped in later.

What a graph holds:

* nodes: the named tree-sitter nodes in pre-order (anonymous punctuation/keywords only with
  ``include_anonymous``; comments never), then one synthetic FUNCTION_EXIT node, always last;
* tokens: leaves get a bucket of their text; with anonymous leaves left out, an operator
  expression gets its operator's bucket instead (so `<` and `<=` differ); other nodes get 0;
* control flow, statement level: block -> first statement, statement -> successor (CFG_NEXT),
  condition -> then/else, loop body, switch cases (CFG_TRUE / CFG_FALSE), loop end -> condition
  or for-update (CFG_BACK), return/break/continue/goto -> exit/after-loop/loop/label (CFG_JUMP);
  preprocessor #if/#else bodies are treated as straight-line code;
* data flow, flow-insensitive as specified: in source order, a declared, assigned or
  incremented identifier is a definition, every other occurrence a use, linked from the last
  definition of that name (a definition counts only once its statement part has been evaluated).

The walk is hand-tuned: one ``TreeCursor`` pass over the tree, flat Python lists, no per-node
objects kept, and array-module buffers for the edge arrays (target >= 1,000 functions/s on 2 cores).
"""

from __future__ import annotations

import dataclasses
import threading
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import tree_sitter
import tree_sitter_c

C_LANGUAGE = tree_sitter.Language(tree_sitter_c.language())

#: Node type ids: tree-sitter kind ids, plus one id for ERROR (tree-sitter reports 65535) and one
#: for the synthetic function-exit node that return statements jump to.
ERROR_TYPE_ID: int = C_LANGUAGE.node_kind_count
EXIT_TYPE_ID: int = C_LANGUAGE.node_kind_count + 1
NUM_NODE_TYPES: int = C_LANGUAGE.node_kind_count + 2

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


_TREE_SITTER_ERROR = 65535  # kind id tree-sitter gives ERROR nodes

# --- grammar ids, resolved by name so a grammar update cannot silently shift them -----------------


def _kind(name: str) -> int:
    kind_id = C_LANGUAGE.id_for_node_kind(name, True)
    if kind_id is None:
        raise RuntimeError(f"tree-sitter-c grammar has no node kind {name!r}")
    return kind_id


def _field(name: str) -> int:
    field_id = C_LANGUAGE.field_id_for_name(name)
    if field_id is None:
        raise RuntimeError(f"tree-sitter-c grammar has no field {name!r}")
    return field_id


K_IDENTIFIER = _kind("identifier")
K_COMMENT = _kind("comment")
K_TRANSLATION_UNIT = _kind("translation_unit")
K_FUNCTION_DEFINITION = _kind("function_definition")
K_COMPOUND = _kind("compound_statement")
K_IF = _kind("if_statement")
K_ELSE = _kind("else_clause")
K_WHILE = _kind("while_statement")
K_FOR = _kind("for_statement")
K_DO = _kind("do_statement")
K_SWITCH = _kind("switch_statement")
K_CASE = _kind("case_statement")
K_LABELED = _kind("labeled_statement")
K_RETURN = _kind("return_statement")
K_BREAK = _kind("break_statement")
K_CONTINUE = _kind("continue_statement")
K_GOTO = _kind("goto_statement")
K_INIT_DECLARATOR = _kind("init_declarator")
K_FUNCTION_DECLARATOR = _kind("function_declarator")
K_ASSIGNMENT = _kind("assignment_expression")
K_UPDATE = _kind("update_expression")
K_PLAIN_ASSIGN = C_LANGUAGE.id_for_node_kind("=", False)  # the anonymous `=` token

F_DECLARATOR = _field("declarator")
F_LEFT = _field("left")
F_CONDITION = _field("condition")
F_INITIALIZER = _field("initializer")
F_UPDATE = _field("update")
F_BODY = _field("body")
F_CONSEQUENCE = _field("consequence")
F_OPERATOR = _field("operator")
F_LABEL = _field("label")

#: Declarator wrappers an identifier climbs through to reach its declaration.
_DECLARATOR_WRAPPERS = frozenset(
    _kind(name) for name in ("pointer_declarator", "array_declarator", "parenthesized_declarator", "attributed_declarator")
)
_DECLARATIONS = frozenset(_kind(name) for name in ("declaration", "parameter_declaration"))
#: Expressions whose (anonymous) operator token is folded into the node's token when anonymous
#: leaves are left out, so that `<` and `<=` still differ.
_OPERATOR_PARENTS = frozenset(
    _kind(name) for name in ("binary_expression", "assignment_expression", "update_expression", "unary_expression", "pointer_expression")
)
#: Nodes that hold a sequence of statements.
_BLOCKS = frozenset(
    [K_TRANSLATION_UNIT, K_COMPOUND, K_CASE, K_LABELED, ERROR_TYPE_ID]
    + [_kind(name) for name in ("preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef")]
)
_LOOPS = frozenset([K_WHILE, K_FOR, K_DO])
#: Nodes whose children can be statements or loop/branch parts.
_CONTAINERS = _BLOCKS | _LOOPS | {K_IF, K_ELSE, K_SWITCH, K_FUNCTION_DEFINITION}
_STATEMENTS = frozenset(
    _BLOCKS
    | _LOOPS
    | {K_IF, K_SWITCH, K_RETURN, K_BREAK, K_CONTINUE, K_GOTO}
    | {
        _kind(name)
        for name in (
            "expression_statement",
            "declaration",
            "type_definition",
            "attributed_statement",
            "preproc_def",
            "preproc_function_def",
            "preproc_call",
            "preproc_include",
        )
    }
) - {K_TRANSLATION_UNIT}
#: What the walk records for the control-flow pass: statements, their containers, loop/branch parts.
_CFG_KINDS = _STATEMENTS | {K_TRANSLATION_UNIT, K_FUNCTION_DEFINITION, K_ELSE}
_CFG_FIELDS = frozenset([F_CONDITION, F_INITIALIZER, F_UPDATE])
_CFG_EDGE_IDS = frozenset(EDGE_TYPES[name] for name in EDGE_GROUPS["control_flow"])
#: Parents under which an identifier may be a definition (elsewhere it is always a use).
_DEFINING_PARENTS = _DECLARATOR_WRAPPERS | _DECLARATIONS | {K_INIT_DECLARATOR, K_FUNCTION_DECLARATOR, K_ASSIGNMENT, K_UPDATE}

# One table lookup per node tells the walk whether a kind needs special handling.
_S_PLAIN, _S_COMMENT, _S_IDENTIFIER, _S_DEFINING, _S_CFG, _S_ERROR = range(6)  # >= _S_CFG: CFG anchor
_SPECIAL_KINDS = [_S_PLAIN] * 65536
_SPECIAL_KINDS[K_COMMENT] = _S_COMMENT
_SPECIAL_KINDS[K_IDENTIFIER] = _S_IDENTIFIER
for _defining_kind in (K_INIT_DECLARATOR, K_ASSIGNMENT, K_UPDATE):
    _SPECIAL_KINDS[_defining_kind] = _S_DEFINING
for _cfg_kind in _CFG_KINDS - {ERROR_TYPE_ID}:
    _SPECIAL_KINDS[_cfg_kind] = _S_CFG
_SPECIAL_KINDS[_TREE_SITTER_ERROR] = _S_ERROR

_AST, _NEXT_TOKEN, _CFG_NEXT, _CFG_TRUE, _CFG_FALSE, _CFG_BACK, _CFG_JUMP, _DFG = (
    EDGE_TYPES[name] for name in ("AST", "NEXT_TOKEN", "CFG_NEXT", "CFG_TRUE", "CFG_FALSE", "CFG_BACK", "CFG_JUMP", "DFG")
)

# Data-flow roles of an identifier occurrence.
_USE, _DEF, _USE_DEF, _SKIP = 0, 1, 2, 3

_thread_state = threading.local()


def get_parser() -> tree_sitter.Parser:
    """One parser per thread (parsers are not thread-safe and cost ~50 µs to create)."""
    parser = getattr(_thread_state, "parser", None)
    if parser is None:
        parser = _thread_state.parser = tree_sitter.Parser(C_LANGUAGE)
    return parser


def parse(code: str) -> tree_sitter.Tree:
    """Parse one function (error-tolerant: malformed code gives ERROR nodes, never an exception)."""
    return get_parser().parse(code.encode("utf-8", errors="replace"))


# --- the walk ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    """Flat per-node lists from one pre-order pass (node i's parent always has a smaller index)."""

    kinds: list[int]
    parents: list[int]
    fields: list[int]  # field id of each node within its parent (0: none)
    tokens: list[int]
    spans: list[tuple[int, int]]  # byte ranges, only when asked for (DOT export, tests)
    leaves: list[int]
    cfg_items: list[int]  # statements, their containers, loop/branch parts: input of _control_flow
    labels: dict[int, bytes]  # labeled_statement / goto_statement -> label text
    defaults: set[int]  # `default:` case statements
    dfg: list[int]  # flat (definition, use) pairs
    num_errors: int
    skipped: bool  # "skip" policy and too big: the lists are incomplete
    overflow: bool  # more than max_nodes - 1 AST nodes


def _walk(source: bytes, tree: tree_sitter.Tree, config: GraphConfig, want_spans: bool) -> _Walk:
    """Collect nodes, tokens, data-flow edges and control-flow anchors in a single cursor pass.

    Past ``max_nodes - 1`` nodes the "skip" policy stops (the graph is discarded anyway) and the
    "truncate" policy switches to a statements-only walk: the nodes it records are dropped later,
    but the control flow between kept statements depends on them (does a statement have a later
    sibling, an `if` an else, a `switch` a default?). Expressions are not entered there, which
    saves most of the work on big functions while giving exactly the full graph, truncated.

    Hot loop: ~0.5 µs per node, so it trades a little readability for speed (local aliases, one
    table lookup for the rare node kinds).
    """
    keep_anonymous = config.include_anonymous
    buckets = config.token_buckets
    check_missing = tree.root_node.has_error
    max_index = config.max_nodes - 1  # AST nodes that fit next to the exit node
    crc32 = zlib.crc32
    special_kinds = _SPECIAL_KINDS
    cfg_fields = _CFG_FIELDS
    operator_parents = _OPERATOR_PARENTS
    defining_parents = _DEFINING_PARENTS

    kinds: list[int] = []
    parents: list[int] = []
    fields: list[int] = []
    tokens: list[int] = []
    spans: list[tuple[int, int]] = []
    leaves: list[int] = []
    cfg_items: list[int] = []
    labels: dict[int, bytes] = {}
    defaults: set[int] = set()
    dfg: list[int] = []
    defining_end: dict[int, int] = {}  # init_declarator / assignment / update -> its end byte
    compound_assignments: set[int] = set()
    last_definition: dict[bytes, int] = {}
    pending: list[tuple[int, bytes, int]] = []  # definitions that take effect at a later byte
    num_errors = 0
    overflow = False

    add_kind, add_parent, add_field, add_token = kinds.append, parents.append, fields.append, tokens.append
    add_leaf, add_cfg, add_dfg = leaves.append, cfg_items.append, dfg.append
    ancestors: list[int] = [-1]  # kept node index for each depth of the cursor (-1 above the root)
    push, pop = ancestors.append, ancestors.pop

    cursor = tree.walk()
    node = cursor.node
    index = -1
    while True:
        if keep_anonymous or node.is_named:
            kind = node.kind_id
            special = special_kinds[kind]
            if special == _S_COMMENT:
                current = ancestors[-1]
            else:
                if special == _S_ERROR:
                    kind = ERROR_TYPE_ID
                    num_errors += 1
                elif check_missing and node.is_missing:
                    num_errors += 1
                index += 1
                if index >= max_index:
                    overflow = True
                    break
                parent = ancestors[-1]
                field_id = cursor.field_id
                add_kind(kind)
                add_parent(parent)
                add_field(field_id)
                if want_spans:
                    spans.append((node.start_byte, node.end_byte))
                if special >= _S_CFG or field_id in cfg_fields:
                    add_cfg(index)
                    if kind == K_CASE or kind == K_LABELED or kind == K_GOTO:
                        _note_jump_label(node, index, source, labels, defaults)
                if (node.child_count if keep_anonymous else node.named_child_count) == 0:
                    start = node.start_byte
                    end = node.end_byte
                    text = source[start:end]
                    add_token(crc32(text) % buckets + 1)
                    add_leaf(index)
                    if special == _S_IDENTIFIER:
                        # Data flow, inline: a definition becomes visible once its statement part ends.
                        if pending:
                            still_pending = []
                            for item in pending:
                                if item[0] <= start:
                                    last_definition[item[1]] = item[2]
                                else:
                                    still_pending.append(item)
                            pending = still_pending
                        if kinds[parent] in defining_parents:
                            role, takes_effect = _identifier_role(index, kinds, parents, fields, defining_end, compound_assignments)
                        else:
                            role = _USE
                        if role == _USE or role == _USE_DEF:
                            definition = last_definition.get(text)
                            if definition is not None:
                                add_dfg(definition)
                                add_dfg(index)
                        if role == _DEF or role == _USE_DEF:
                            if takes_effect <= end:
                                last_definition[text] = index
                            else:
                                pending.append((takes_effect, text, index))
                else:
                    add_token(0)
                    if special == _S_DEFINING:
                        defining_end[index] = node.end_byte
                        if kind == K_ASSIGNMENT:
                            operator = node.child_by_field_id(F_OPERATOR)
                            if operator is not None and operator.kind_id != K_PLAIN_ASSIGN:
                                compound_assignments.add(index)
                current = index
        else:
            current = ancestors[-1]
            if check_missing and node.is_missing:
                num_errors += 1
            if kinds[current] in operator_parents and cursor.field_id == F_OPERATOR:
                tokens[current] = crc32(source[node.start_byte : node.end_byte]) % buckets + 1
        if cursor.goto_first_child():
            push(current)
        elif not cursor.goto_next_sibling():
            finished = True
            while cursor.goto_parent():
                pop()
                if cursor.goto_next_sibling():
                    finished = False
                    break
            if finished:
                break
        node = cursor.node

    skipped = overflow and config.oversize_policy == "skip"
    if overflow and not skipped:
        # Statements-only continuation, from the first node that did not fit (always named).
        containers = _CONTAINERS
        while True:
            if node.is_named:
                kind = node.kind_id
                special = special_kinds[kind]
                field_id = cursor.field_id
                if special >= _S_CFG or field_id in cfg_fields:
                    if special == _S_ERROR:
                        kind = ERROR_TYPE_ID
                    add_kind(kind)
                    add_parent(ancestors[-1])
                    add_field(field_id)
                    add_token(0)
                    add_cfg(index)
                    if want_spans:
                        spans.append((node.start_byte, node.end_byte))
                    if kind == K_CASE or kind == K_LABELED or kind == K_GOTO:
                        _note_jump_label(node, index, source, labels, defaults)
                    index += 1
                    if kind in containers and cursor.goto_first_child():
                        push(index - 1)
                        node = cursor.node
                        continue
            elif not keep_anonymous:
                # The operator of a kept expression can come after its first operand.
                current = ancestors[-1]
                if current < max_index and kinds[current] in operator_parents and cursor.field_id == F_OPERATOR:
                    tokens[current] = crc32(source[node.start_byte : node.end_byte]) % buckets + 1
            if not cursor.goto_next_sibling():
                finished = True
                while cursor.goto_parent():
                    pop()
                    if cursor.goto_next_sibling():
                        finished = False
                        break
                if finished:
                    break
            node = cursor.node
    if check_missing and overflow:
        num_errors = _count_errors(tree)
    return _Walk(
        kinds=kinds,
        parents=parents,
        fields=fields,
        tokens=tokens,
        spans=spans,
        leaves=leaves,
        cfg_items=cfg_items,
        labels=labels,
        defaults=defaults,
        dfg=dfg,
        num_errors=num_errors,
        skipped=skipped,
        overflow=overflow,
    )


def _note_jump_label(node: tree_sitter.Node, index: int, source: bytes, labels: dict[int, bytes], defaults: set[int]) -> None:
    """Label of a labeled/goto statement, or whether a case is `default:`, read from the statement
    itself (its children may lie past the truncation point)."""
    if node.kind_id == K_CASE:
        if source.startswith(b"default", node.start_byte):
            defaults.add(index)
        return
    label = node.child_by_field_id(F_LABEL)
    if label is not None:
        labels[index] = source[label.start_byte : label.end_byte]


def _identifier_role(
    index: int,
    kinds: list[int],
    parents: list[int],
    fields: list[int],
    defining_end: dict[int, int],
    compound_assignments: set[int],
) -> tuple[int, int]:
    """Is this identifier a definition, a use, both, or the function's own name?

    Returns (role, byte offset at which a definition becomes visible): `int n = n + 1` defines n
    only after its initialiser, so the `n` on the right still reads the previous definition.
    """
    child = index
    parent = parents[child]
    while parent >= 0:
        parent_kind = kinds[parent]
        child_field = fields[child]
        if child_field == F_DECLARATOR:
            if parent_kind in _DECLARATOR_WRAPPERS:
                child, parent = parent, parents[parent]
                continue
            if parent_kind == K_INIT_DECLARATOR:
                return _DEF, defining_end[parent]
            if parent_kind in _DECLARATIONS:
                return _DEF, 0
            if parent_kind == K_FUNCTION_DECLARATOR:
                grandparent = parents[parent]
                if grandparent >= 0 and kinds[grandparent] == K_FUNCTION_DEFINITION:
                    return _SKIP, 0
                child, parent = parent, grandparent  # a function pointer variable
                continue
            return _USE, 0
        if parent_kind == K_ASSIGNMENT and child_field == F_LEFT and child == index:
            return (_USE_DEF if parent in compound_assignments else _DEF), defining_end[parent]
        if parent_kind == K_UPDATE and child == index:
            return _USE_DEF, defining_end[parent]
        return _USE, 0
    return _USE, 0


def _count_errors(tree: tree_sitter.Tree) -> int:
    """ERROR + MISSING nodes over the whole tree (when the main walk did not see all of it)."""
    count = 0
    cursor = tree.walk()
    while True:
        node = cursor.node
        if node.is_error or node.is_missing:
            count += 1
        if node.has_error and cursor.goto_first_child():  # error-free subtrees are skipped
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return count


# --- control flow --------------------------------------------------------------------------------


def _control_flow(walk: _Walk, exit_node: int, enabled: frozenset[int]) -> tuple[list[int], list[int], list[int]]:
    """Statement-level CFG edges as (sources, targets, types), keeping only the enabled types.

    Nodes are statements plus loop/branch conditions, for-loop initialisers/updates, and the exit
    node. ``follow(s)`` (where control goes when s completes normally) climbs the parents
    iteratively and is memoised along the path, so deep nesting neither recurses nor goes quadratic.
    """
    kinds, parents, fields = walk.kinds, walk.parents, walk.fields
    condition: dict[int, int] = {}
    initializer: dict[int, int] = {}
    update: dict[int, int] = {}
    body: dict[int, int] = {}
    consequence: dict[int, int] = {}
    alternative: dict[int, int] = {}
    first_child: dict[int, int] = {}
    next_sibling: dict[int, int] = {}
    last_child: dict[int, int] = {}
    cases: dict[int, list[int]] = {}  # switch body -> its case statements
    functions: list[int] = []
    statements: list[int] = []
    label_targets: dict[bytes, int] = {}

    # Pass 1: the role of every recorded anchor (it needs nodes that come later in pre-order).
    for item in walk.cfg_items:
        parent = parents[item]
        if parent < 0:
            continue
        kind, parent_kind, item_field = kinds[item], kinds[parent], fields[item]
        if item_field == F_CONDITION:
            condition[parent] = item
        elif item_field == F_INITIALIZER and parent_kind == K_FOR:
            initializer[parent] = item
        elif item_field == F_UPDATE:
            update[parent] = item
        elif kind == K_FUNCTION_DEFINITION:
            functions.append(item)
        elif kind == K_ELSE:
            alternative[parent] = item
        elif kind in _STATEMENTS:
            if parent_kind in _BLOCKS:
                previous = last_child.get(parent)
                if previous is None:
                    first_child[parent] = item
                else:
                    next_sibling[previous] = item
                last_child[parent] = item
                if kind == K_CASE:
                    cases.setdefault(parent, []).append(item)
            elif item_field == F_BODY:
                body[parent] = item
            elif item_field == F_CONSEQUENCE:
                consequence[parent] = item
            elif parent_kind == K_ELSE:
                first_child[parent] = item
            else:
                continue  # a statement in expression position (GNU statement expression): no CFG
            statements.append(item)
            if kind == K_LABELED and item in walk.labels:
                label_targets.setdefault(walk.labels[item], item)

    def entry(statement: int) -> int:
        kind = kinds[statement]
        if kind == K_FOR:
            return initializer.get(statement, condition.get(statement, statement))
        if kind == K_IF or kind == K_WHILE or kind == K_SWITCH:
            return condition.get(statement, statement)
        if kind == K_ELSE and statement in first_child:
            return entry(first_child[statement])  # one level: an else holds a single statement
        return statement

    def continue_target(loop: int) -> int:
        if kinds[loop] == K_FOR and loop in update:
            return update[loop]
        return condition.get(loop, loop)

    followed: dict[int, tuple[int, int] | None] = {}

    def follow(statement: int) -> tuple[int, int] | None:
        path = []
        current = statement
        result: tuple[int, int] | None = None
        while True:
            if current in followed:
                result = followed[current]
                break
            path.append(current)
            parent = parents[current]
            if parent < 0 or kinds[parent] == K_FUNCTION_DEFINITION:
                result = (exit_node, _CFG_NEXT)
                break
            parent_kind = kinds[parent]
            if parent_kind in _BLOCKS:
                if current in next_sibling:
                    result = (entry(next_sibling[current]), _CFG_NEXT)
                    break
                current = parent
            elif parent_kind == K_IF or parent_kind == K_ELSE or parent_kind == K_SWITCH:
                current = parent
            elif parent_kind == K_WHILE:
                result = (condition.get(parent, parent), _CFG_BACK)
                break
            elif parent_kind == K_FOR:
                if parent in update:
                    result = (update[parent], _CFG_NEXT)
                else:
                    result = (condition.get(parent, parent), _CFG_BACK)
                break
            elif parent_kind == K_DO:
                result = (condition.get(parent, parent), _CFG_NEXT)
                break
            else:
                break  # inside an expression (statement expression): no successor we can name
        for visited in path:
            followed[visited] = result
        return result

    def enclosing(statement: int, wanted: frozenset[int]) -> int | None:
        current = parents[statement]
        while current >= 0 and kinds[current] != K_FUNCTION_DEFINITION:
            if kinds[current] in wanted:
                return current
            current = parents[current]
        return None

    sources: list[int] = []
    targets: list[int] = []
    types: list[int] = []

    def add(source: int, target: int, edge_type: int) -> None:
        if edge_type in enabled:
            sources.append(source)
            targets.append(target)
            types.append(edge_type)

    def add_follow(source: int, statement: int, edge_type: int | None = None) -> None:
        successor = follow(statement)
        if successor is not None:
            add(source, successor[0], successor[1] if edge_type is None else edge_type)

    # Pass 2: edges, in pre-order of their statement (deterministic).
    for function in functions:
        if function in body:
            add(function, entry(body[function]), _CFG_NEXT)
    breakable = _LOOPS | {K_SWITCH}
    for statement in statements:
        kind = kinds[statement]
        if kind == K_IF:
            head = condition.get(statement, statement)
            if statement in consequence:
                add(head, entry(consequence[statement]), _CFG_TRUE)
            if statement in alternative:
                add(head, entry(alternative[statement]), _CFG_FALSE)
            else:
                add_follow(head, statement, _CFG_FALSE)
        elif kind == K_WHILE or kind == K_FOR:
            head = condition.get(statement, statement)
            if statement in initializer:
                add(initializer[statement], head, _CFG_NEXT)
            if statement in body:
                add(head, entry(body[statement]), _CFG_TRUE)
            if statement in condition:  # `for (;;)` only leaves through break/return/goto
                add_follow(head, statement, _CFG_FALSE)
            if statement in update:
                add(update[statement], head, _CFG_BACK)
        elif kind == K_DO:
            head = condition.get(statement, statement)
            if statement in body:
                add(statement, entry(body[statement]), _CFG_NEXT)
                add(head, entry(body[statement]), _CFG_BACK)
            add_follow(head, statement, _CFG_FALSE)
        elif kind == K_SWITCH:
            head = condition.get(statement, statement)
            switch_cases = cases.get(body.get(statement, -1), [])
            for case in switch_cases:
                add(head, case, _CFG_TRUE)
            if not any(case in walk.defaults for case in switch_cases):
                add_follow(head, statement, _CFG_FALSE)
        elif kind == K_RETURN:
            add(statement, exit_node, _CFG_JUMP)
        elif kind == K_BREAK:
            target = enclosing(statement, breakable)
            if target is not None:
                add_follow(statement, target, _CFG_JUMP)
        elif kind == K_CONTINUE:
            target = enclosing(statement, _LOOPS)
            if target is not None:
                add(statement, continue_target(target), _CFG_JUMP)
        elif kind == K_GOTO:
            label = walk.labels.get(statement)
            if label in label_targets:
                add(statement, label_targets[label], _CFG_JUMP)
        elif kind in _BLOCKS:
            if kind == K_COMPOUND and kinds[parents[statement]] == K_SWITCH:
                continue  # the switch jumps straight to its cases
            if statement in first_child:
                add(statement, entry(first_child[statement]), _CFG_NEXT)
            else:
                add_follow(statement, statement)  # empty block: falls through
        else:
            add_follow(statement, statement)
    return sources, targets, types


# --- assembly ------------------------------------------------------------------------------------


def build_graph(code: str, config: GraphConfig = GraphConfig()) -> CodeGraph:
    """Typed code graph of one C function (malformed code still gives a graph; ERRORs are counted)."""
    return _build(code, config, want_spans=False)[0]


def _build(code: str, config: GraphConfig, want_spans: bool) -> tuple[CodeGraph, list[tuple[int, int]]]:
    source = code.encode("utf-8", errors="replace")
    tree = get_parser().parse(source)
    walk = _walk(source, tree, config, want_spans=want_spans)
    if walk.skipped:
        return _placeholder(walk.num_errors, config), []
    num_ast_nodes = len(walk.kinds)

    exit_node = num_ast_nodes
    enabled = config.enabled_edge_ids()
    # array.array accumulators: several times cheaper than np.array(list) for these small graphs.
    sources, targets, types = array("q"), array("q"), bytearray()
    if _AST in enabled and num_ast_nodes > 1:
        sources.extend(walk.parents[1:])  # pre-order: only the root (index 0) has no parent
        targets.extend(range(1, num_ast_nodes))
        types += bytes((_AST,)) * (num_ast_nodes - 1)
    if _NEXT_TOKEN in enabled and len(walk.leaves) > 1:
        sources.extend(walk.leaves[:-1])
        targets.extend(walk.leaves[1:])
        types += bytes((_NEXT_TOKEN,)) * (len(walk.leaves) - 1)
    if enabled & _CFG_EDGE_IDS:
        control_sources, control_targets, control_types = _control_flow(walk, exit_node, enabled)
        sources.extend(control_sources)
        targets.extend(control_targets)
        types += bytes(control_types)
    if _DFG in enabled and walk.dfg:
        sources.extend(walk.dfg[0::2])
        targets.extend(walk.dfg[1::2])
        types += bytes((_DFG,)) * (len(walk.dfg) // 2)

    edge_index = np.empty((2, len(sources)), dtype=np.int64)
    edge_index[0] = np.frombuffer(sources, dtype=np.int64)
    edge_index[1] = np.frombuffer(targets, dtype=np.int64)
    edge_type = np.frombuffer(bytes(types), dtype=np.int8).copy()
    node_type = np.frombuffer(array("i", walk.kinds + [EXIT_TYPE_ID]), dtype=np.int32).copy()
    node_token = np.frombuffer(array("i", walk.tokens + [0]), dtype=np.int32).copy()
    spans = walk.spans + [(len(source), len(source))] if want_spans else []

    truncated = walk.overflow
    if truncated:
        # Keep the first max_nodes - 1 nodes in pre-order and the exit node; drop edges that touch
        # anything else, then renumber the exit node so every index stays < num_nodes.
        kept = config.max_nodes - 1
        in_range = ((edge_index < kept) | (edge_index == exit_node)).all(axis=0)
        edge_index = edge_index[:, in_range]
        edge_index[edge_index == exit_node] = kept
        edge_type = edge_type[in_range]
        node_type = np.concatenate([node_type[:kept], node_type[-1:]])
        node_token = np.concatenate([node_token[:kept], node_token[-1:]])
        spans = spans[:kept] + spans[-1:] if want_spans else []

    graph = CodeGraph(
        node_type=node_type,
        node_token=node_token,
        edge_index=np.ascontiguousarray(edge_index, dtype=np.int64),
        edge_type=np.ascontiguousarray(edge_type, dtype=np.int8),
        num_error_nodes=walk.num_errors,
        truncated=truncated,
        skipped=False,
        config=config,
    )
    return graph, spans


def _placeholder(num_errors: int, config: GraphConfig) -> CodeGraph:
    """Stand-in for a skipped function: one node, no edges, so batching and pooling still work."""
    return CodeGraph(
        node_type=np.asarray([K_TRANSLATION_UNIT], dtype=np.int32),
        node_token=np.zeros(1, dtype=np.int32),
        edge_index=np.zeros((2, 0), dtype=np.int64),
        edge_type=np.zeros(0, dtype=np.int8),
        num_error_nodes=num_errors,
        truncated=False,
        skipped=True,
        config=config,
    )


def build_graphs(codes: Iterable[str], config: GraphConfig = GraphConfig(), progress: bool = False) -> list[CodeGraph]:
    """Graphs for many functions, in input order (a progress bar helps on the 27k-function Devign)."""
    if progress:
        from streamguard.runtime.progress import progress as progress_bar

        codes = progress_bar(codes, desc="code graphs", unit="fn")
    return [build_graph(code, config) for code in codes]


def graph_stats(graphs: Sequence[CodeGraph]) -> dict[str, Any]:
    """Size and quality figures for a set of graphs (JSON-ready; feeds the graph report)."""
    count = len(graphs)
    nodes = np.asarray([graph.num_nodes for graph in graphs], dtype=np.float64)
    edges = np.asarray([graph.num_edges for graph in graphs], dtype=np.float64)

    def summary(values: np.ndarray) -> dict[str, float]:
        if values.size == 0:
            return {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0.0}
        return {
            "mean": round(float(values.mean()), 2),
            "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)),
            "max": float(values.max()),
        }

    per_type = np.zeros(len(EDGE_TYPES), dtype=np.int64)
    for graph in graphs:
        per_type += np.bincount(graph.edge_type.astype(np.int64), minlength=len(EDGE_TYPES))[: len(EDGE_TYPES)]
    with_errors = sum(1 for graph in graphs if graph.num_error_nodes > 0)
    return {
        "count": count,
        "nodes": summary(nodes),
        "edges": summary(edges),
        "share_with_error_nodes": round(with_errors / count, 4) if count else 0.0,
        "truncated": sum(1 for graph in graphs if graph.truncated),
        "skipped": sum(1 for graph in graphs if graph.skipped),
        "edges_per_type": {name: int(per_type[type_id]) for name, type_id in EDGE_TYPES.items()},
    }
