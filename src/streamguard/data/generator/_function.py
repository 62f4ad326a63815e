"""One function under construction (parameters, declarations, body, cleanup) and statement helpers."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamguard.data.generator._vocabulary import (
    _CAPS, _CAP_MACROS, _C_KEYWORDS, _ERROR_CODES, _HELPER_VERBS, _INDEX_STEMS, _NOUNS, _OBJECT_STEMS,
    _STRUCT_SUFFIXES, _WARN_CALLS,
)


@dataclass
class _Function:
    """One function under construction: parameters, declarations, body and cleanup tail."""

    rng: random.Random
    goto_style: bool
    params: list[str] = field(default_factory=list)
    decls: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    status: str | None = None
    label: str = "out"
    uses_label: bool = False
    context: str | None = None
    counters: list[str] = field(default_factory=list)

    # -- names and declarations --
    def name(self, stems: Sequence[str]) -> str:
        """A fresh identifier: a stem, sometimes qualified or numbered, never reused."""
        rng = self.rng
        stem = rng.choice(stems)
        roll = rng.random()
        if roll < 0.6:
            candidate = stem
        elif roll < 0.75:
            candidate = f"{stem}{rng.randint(0, 9)}"
        elif roll < 0.92:
            candidate = f"{rng.choice(_NOUNS)[:4]}_{stem}"
        else:
            candidate = f"{stem}_{rng.choice(_NOUNS)}"
        while candidate in self.names or candidate in _C_KEYWORDS:
            candidate = f"{candidate}_{rng.randint(0, 9)}"
        self.names.add(candidate)
        return candidate

    def param(self, declared_type: str, stems: Sequence[str]) -> str:
        name = self.name(stems)
        self.params.append(_declare(declared_type, name))
        return name

    def local(self, declared_type: str, stems: Sequence[str], init: str | None = None) -> str:
        name = self.name(stems)
        if init is None and self.goto_style and declared_type.endswith("*"):
            init = "NULL"  # the cleanup label frees it, so it must start as NULL
        self.decls.append(_declare(declared_type, name) + (f" = {init};" if init is not None else ";"))
        return name

    def array(self, element_type: str, stems: Sequence[str], size: str) -> str:
        name = self.name(stems)
        self.decls.append(f"{element_type} {name}[{size}];")
        return name

    def ctx(self) -> str:
        """The function's context-struct parameter, created on first use."""
        if self.context is None:
            struct = f"struct {self.rng.choice(_NOUNS)}_{self.rng.choice(_STRUCT_SUFFIXES)}"
            self.context = self.name(_OBJECT_STEMS)
            self.params.insert(0, f"{struct} *{self.context}")
        return self.context

    def counter(self) -> str:
        """A local integer for noise arithmetic."""
        if not self.counters or self.rng.random() < 0.3:
            self.counters.append(self.local(self.rng.choice(("int", "unsigned int", "long", "size_t")),
                                            ("total", "acc", "sum", "hits", "steps", "nr", "seen", "score"), "0"))
        return self.rng.choice(self.counters)

    # -- statements --
    def pick(self, options: Sequence[str]) -> str:
        return self.rng.choice(options)

    def fail(self) -> list[str]:
        """The error exit: `return -E;` or, in goto style, `rc = -E; goto out;`."""
        code = self.pick(_ERROR_CODES)
        if self.goto_style:
            self.uses_label = True
            return [f"{self.status} = {code};", f"goto {self.label};"]
        return [f"return {code};"]

    def guard(self, condition: str, body: list[str] | None = None, log: bool | None = None) -> list[str]:
        """`if (condition) <exit>` in one of several layouts, sometimes with a warning first."""
        rng = self.rng
        body = list(body) if body is not None else self.fail()
        with_warning = rng.random() < 0.25 if log is None else log
        if with_warning:
            body.insert(0, f'{self.pick(_WARN_CALLS)}("{self.pick(_NOUNS)} {self.pick(_WARN_WORDS)}");')
        return _if(rng, condition, body)

    def sink(self, *arguments: str) -> list[str]:
        """A call that consumes a value; sometimes its own return value is checked (noise)."""
        rng = self.rng
        args = list(arguments)
        if rng.random() < 0.35:
            args.insert(0, self.ctx())
        call = f"{self.pick(_HELPER_VERBS)}_{self.pick(_NOUNS)}({', '.join(args)})"
        roll = rng.random()
        if roll < 0.15:
            return self.guard(f"{call} < 0")
        if roll < 0.35:
            return [f"{self.counter()} += {call};"]
        return [f"{call};"]


_NUL = "'\\0'"
_WARN_WORDS = ("too long", "out of range", "invalid", "failed", "truncated", "rejected", "missing")


def _declare(declared_type: str, name: str) -> str:
    if declared_type.endswith("*"):
        return f"{declared_type}{name}"
    return f"{declared_type} {name}"


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return [("    " * depth + line) if line else line for line in lines]


def _if(rng: random.Random, condition: str, body: list[str], else_body: list[str] | None = None) -> list[str]:
    if else_body is None and len(body) == 1 and not body[0].startswith(("if", "for", "while", "do")):
        roll = rng.random()
        if roll < 0.25:
            return [f"if ({condition})", *_indent(body)]
        if roll < 0.4:
            return [f"if ({condition}) {body[0]}"]
    lines = [f"if ({condition}) {{", *_indent(body), "}"]
    if else_body:
        lines[-1] = "} else {"
        lines += [*_indent(else_body), "}"]
    return lines


def _loop(rng: random.Random, index: str, start: str, condition: str, body: list[str]) -> list[str]:
    """The same iteration as a `for` or a `while` loop (the index is already declared)."""
    if rng.random() < 0.6:
        return [f"for ({index} = {start}; {condition}; {index}++) {{", *_indent(body), "}"]
    return [f"{index} = {start};", f"while ({condition}) {{", *_indent(body), f"    {index}++;", "}"]


def _is_null(rng: random.Random, pointer: str) -> str:
    return rng.choice((f"{pointer} == NULL", f"!{pointer}", f"NULL == {pointer}", f"{pointer} == NULL"))


def _not_null(rng: random.Random, pointer: str) -> str:
    return rng.choice((f"{pointer} != NULL", pointer, f"{pointer} != NULL"))


def _cap(fn: _Function) -> str:
    return fn.pick(_CAPS) if fn.rng.random() < 0.55 else fn.pick(_CAP_MACROS)


def _index_var(fn: _Function) -> str:
    return fn.local(fn.pick(("size_t", "int", "unsigned int", "size_t")), _INDEX_STEMS)


def _ensure_status(fn: _Function) -> None:
    if fn.status is None:
        fn.status = fn.name(("rc", "ret", "err", "status", "res"))
        fn.decls.insert(0, f"int {fn.status} = 0;")
        fn.label = fn.pick(("out", "out", "fail", "cleanup", "done", "err_out"))
