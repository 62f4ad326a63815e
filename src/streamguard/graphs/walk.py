"""The one pre-order cursor pass over a parse tree: nodes, tokens, data-flow pairs and the anchors the
control-flow pass needs, in flat Python lists (see ``builder`` for what a graph holds).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import tree_sitter

from streamguard.graphs.grammar import (
    ERROR_TYPE_ID,
    F_DECLARATOR,
    F_LABEL,
    F_LEFT,
    F_OPERATOR,
    K_ASSIGNMENT,
    K_CASE,
    K_FUNCTION_DECLARATOR,
    K_FUNCTION_DEFINITION,
    K_GOTO,
    K_INIT_DECLARATOR,
    K_LABELED,
    K_PLAIN_ASSIGN,
    K_UPDATE,
    _CFG_FIELDS,
    _CONTAINERS,
    _DECLARATIONS,
    _DECLARATOR_WRAPPERS,
    _DEFINING_PARENTS,
    _OPERATOR_PARENTS,
    _SPECIAL_KINDS,
    _S_CFG,
    _S_COMMENT,
    _S_DEFINING,
    _S_ERROR,
    _S_IDENTIFIER,
)
from streamguard.graphs.schema import GraphConfig


# Data-flow roles of an identifier occurrence.
_USE, _DEF, _USE_DEF, _SKIP = 0, 1, 2, 3
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
