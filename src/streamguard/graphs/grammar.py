"""tree-sitter-c as the graph builder uses it: kind and field ids resolved by name (a grammar update
cannot silently shift them), the node-kind sets the walk and the control-flow pass test, one parser per thread.
"""

from __future__ import annotations

import threading

import tree_sitter
import tree_sitter_c


C_LANGUAGE = tree_sitter.Language(tree_sitter_c.language())

#: Node type ids: tree-sitter kind ids, plus one id for ERROR (tree-sitter reports 65535) and one
#: for the synthetic function-exit node that return statements jump to.
ERROR_TYPE_ID: int = C_LANGUAGE.node_kind_count
EXIT_TYPE_ID: int = C_LANGUAGE.node_kind_count + 1
NUM_NODE_TYPES: int = C_LANGUAGE.node_kind_count + 2
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
