"""Statement-level control flow from the walk's anchors: CFG_NEXT, CFG_TRUE / CFG_FALSE, CFG_BACK and CFG_JUMP
(return / break / continue / goto) edges.
"""

from __future__ import annotations

from streamguard.graphs.grammar import (
    F_BODY,
    F_CONDITION,
    F_CONSEQUENCE,
    F_INITIALIZER,
    F_UPDATE,
    K_BREAK,
    K_CASE,
    K_COMPOUND,
    K_CONTINUE,
    K_DO,
    K_ELSE,
    K_FOR,
    K_FUNCTION_DEFINITION,
    K_GOTO,
    K_IF,
    K_LABELED,
    K_RETURN,
    K_SWITCH,
    K_WHILE,
    _BLOCKS,
    _LOOPS,
    _STATEMENTS,
)
from streamguard.graphs.schema import _CFG_BACK, _CFG_FALSE, _CFG_JUMP, _CFG_NEXT, _CFG_TRUE
from streamguard.graphs.walk import _Walk


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
