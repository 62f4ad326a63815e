"""The eight CWE families: each snippet writes the vulnerable or the fixed form into a function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streamguard.data.generator._vocabulary import (
    _BUFFER_STEMS, _CAP_MACROS, _ELEM_TYPES, _FIELDS, _HELPER_VERBS, _INDEX_STEMS, _LENGTH_STEMS, _NOUNS,
    _OBJECT_STEMS, _SIGNED_TYPES, _SIZE_TYPES, _SOURCE_STEMS, _STRUCT_SUFFIXES, _VERBS, _WARN_CALLS,
)
from streamguard.data.generator._function import (
    _Function, _NUL, _cap, _ensure_status, _if, _indent, _index_var, _is_null, _loop, _not_null,
)


# --- families: each snippet writes the vulnerable or fixed form into `fn.body` -------------


def _oob_write_copy(fn: _Function, vulnerable: bool) -> None:
    """memcpy / copy loop into a fixed array; the classic bug is the terminator at buf[len]."""
    rng = fn.rng
    element = fn.pick(_ELEM_TYPES)
    size = _cap(fn)
    buffer = fn.array(element, _BUFFER_STEMS, size)
    source = fn.param(f"const {element} *", _SOURCE_STEMS)
    length = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    bound = fn.pick((f"sizeof({buffer})", size))
    terminate = rng.random() < 0.6
    if vulnerable:
        mode = rng.choice(("missing", "missing", "off_by_one", "off_by_one", "wrong_variable"))
        if mode == "off_by_one":
            condition = f"{length} > {bound}" if terminate else f"{length} > {bound} + 1"
        elif mode == "wrong_variable":
            other = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
            condition = fn.pick((f"{other} >= {bound}", f"{other} > {bound}"))
        else:
            condition = None
    else:
        if terminate:
            condition = fn.pick((f"{length} >= {bound}", f"{length} > {bound} - 1", f"{length} + 1 > {bound}"))
        else:
            condition = fn.pick((f"{length} > {bound}", f"{length} >= {bound}"))
    if condition:
        fn.body += fn.guard(condition)
    if rng.random() < 0.55:
        fn.body.append(f"memcpy({buffer}, {source}, {length});")
    else:
        index = _index_var(fn)
        fn.body += _loop(rng, index, "0", f"{index} < {length}", [f"{buffer}[{index}] = {source}[{index}];"])
    if terminate:
        fn.body.append(f"{buffer}[{length}] = {fn.pick(('0', _NUL))};")
    fn.body += fn.sink(buffer, length)


def _oob_write_loop(fn: _Function, vulnerable: bool) -> None:
    """Fill a caller buffer of capacity `cap` from `n` inputs."""
    rng = fn.rng
    element = fn.pick(_ELEM_TYPES)
    out = fn.param(f"{element} *", _BUFFER_STEMS)
    capacity = fn.param(fn.pick(_SIZE_TYPES), ("cap", "capacity", "out_len", "max", "room", "limit", "outsz"))
    source = fn.param(f"const {element} *", _SOURCE_STEMS)
    count = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    index = _index_var(fn)
    loop_condition = f"{index} < {count}"
    condition: str | None = f"{count} > {capacity}"
    if vulnerable:
        mode = rng.choice(("missing", "missing", "reversed", "wrong_variable", "inclusive", "inclusive"))
        if mode == "missing":
            condition = None
        elif mode == "reversed":
            condition = f"{capacity} > {count}"
        elif mode == "wrong_variable":
            condition = f"{count} > {fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)}"
        else:
            condition = f"{count} > {capacity}"
            loop_condition = f"{index} <= {count}"
    else:
        mode = rng.choice(("checked", "checked", "checked", "both_in_loop", "strict"))
        if mode == "both_in_loop":
            condition = None
            loop_condition = f"{index} < {count} && {index} < {capacity}"
        elif mode == "strict":
            condition = f"{count} >= {capacity}"
    if condition:
        fn.body += fn.guard(condition)
    value = fn.pick((f"{source}[{index}]", f"{source}[{index}] ^ 0x{rng.randint(1, 255):02x}",
                     f"({element})({source}[{index}] + {rng.randint(1, 9)})", f"tolower({source}[{index}])"))
    fn.body += _loop(rng, index, "0", loop_condition, [f"{out}[{index}] = {value};"])
    fn.body += fn.sink(out, count)


def _oob_write_index(fn: _Function, vulnerable: bool) -> None:
    """Store into a fixed-size table at a caller-supplied index."""
    rng = fn.rng
    table = fn.param(f"struct {fn.pick(_NOUNS)}_{fn.pick(_STRUCT_SUFFIXES)} *", _OBJECT_STEMS)
    slots = fn.pick(("slots", "entries", "items", "vals", "map", "regs", "ids"))
    bound = fn.pick((fn.pick(_CAP_MACROS), f"ARRAY_SIZE({table}->{slots})"))
    signed = rng.random() < 0.5
    index = fn.param(fn.pick(_SIGNED_TYPES[:4]) if signed else fn.pick(_SIZE_TYPES), _INDEX_STEMS)
    value = fn.param(fn.pick(("int", "uint32_t", "long", "u16")), ("val", "v", "value", "word", "id", "reg"))
    if vulnerable:
        mode = rng.choice(("off_by_one", "missing", "missing", "wrong_variable", "negative" if signed else "missing"))
        condition = {
            "off_by_one": f"{index} > {bound}" if not signed else f"{index} < 0 || {index} > {bound}",
            "missing": None,
            "wrong_variable": f"{table}->count >= {bound}",
            "negative": f"{index} >= {bound}",
        }[mode]
    else:
        condition = f"{index} < 0 || {index} >= {bound}" if signed else f"{index} >= {bound}"
        if rng.random() < 0.3:
            condition = f"{table}->count >= {bound} || " + (f"({condition})" if signed else condition)
    if condition:
        fn.body += fn.guard(condition)
    fn.body.append(f"{table}->{slots}[{index}] = {value};")
    fn.body.append(fn.pick((f"{table}->count++;", f"{table}->dirty = 1;", f"{table}->gen += 1;")))


def _oob_write_string(fn: _Function, vulnerable: bool) -> None:
    """String copies into a fixed array: strcpy/strncpy/sprintf in both classes."""
    rng = fn.rng
    size = _cap(fn)
    buffer = fn.array("char", _BUFFER_STEMS, size)
    source = fn.param("const char *", _SOURCE_STEMS)
    if rng.random() < 0.5:
        if vulnerable:
            condition = fn.pick((f"strlen({source}) > sizeof({buffer})", None, f"strlen({source}) > {size}"))
        else:
            condition = fn.pick((f"strlen({source}) >= sizeof({buffer})", f"strlen({source}) + 1 > {size}"))
        if condition:
            fn.body += fn.guard(condition)
        fn.body.append(f"strcpy({buffer}, {source});")
    elif rng.random() < 0.5:
        fn.body.append(f"strncpy({buffer}, {source}, sizeof({buffer}){'' if vulnerable else ' - 1'});")
        fn.body.append(f"{buffer}[sizeof({buffer}){'' if vulnerable else ' - 1'}] = '\\0';")
    else:
        other = fn.param("const char *", _SOURCE_STEMS)
        if vulnerable:
            condition = fn.pick((f"strlen({source}) + strlen({other}) > sizeof({buffer})", None,
                                 f"strlen({source}) >= sizeof({buffer})"))
        else:
            condition = f"strlen({source}) + strlen({other}) + 2 > sizeof({buffer})"
        if condition:
            fn.body += fn.guard(condition)
        fn.body.append(f'sprintf({buffer}, "%s/%s", {source}, {other});')
    fn.body += fn.sink(buffer)


def _oob_read_lookup(fn: _Function, vulnerable: bool) -> None:
    rng = fn.rng
    element = fn.pick(("int", "uint32_t", "const char *", "short", "uint16_t", "long"))
    table_type = f"const {element} *" if "*" not in element else "const char **"
    table = fn.param(table_type, ("table", "tbl", "map", "names", "lut", "vals"))
    count = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    signed = rng.random() < 0.4
    index = fn.param(fn.pick(_SIGNED_TYPES[:4]) if signed else fn.pick(_SIZE_TYPES), _INDEX_STEMS)
    if vulnerable:
        negatives_unchecked = (f"{index} >= (int){count}",) if signed else ()
        condition = fn.pick((f"{index} > {count}", f"{count} == 0", None, None) + negatives_unchecked)
    else:
        condition = f"{index} < 0 || {index} >= (int){count}" if signed else f"{index} >= {count}"
        if rng.random() < 0.3:
            condition = f"{count} == 0 || " + (f"({condition})" if signed else condition)
    if condition:
        fn.body += fn.guard(condition)
    value_type = "const char *" if "*" in element else element
    result = fn.local(value_type, ("v", "val", "entry", "res", "word", "item"))
    fn.body.append(f"{result} = {table}[{index}];")
    fn.body += fn.sink(result)


def _oob_read_tlv(fn: _Function, vulnerable: bool) -> None:
    """Type-length-value walk: header byte at pos + 1 and the value length must both fit."""
    rng = fn.rng
    data = fn.param(fn.pick(("const uint8_t *", "const unsigned char *", "const u8 *")), _SOURCE_STEMS)
    length = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    position = fn.local("size_t", ("pos", "off", "cur", "at"), "0")
    kind = fn.local(fn.pick(("unsigned int", "uint8_t", "int")), ("type", "tag", "kind", "code", "op"))
    item_length = fn.local(fn.pick(("size_t", "unsigned int")), ("vlen", "item_len", "plen", "seglen", "l"))
    mode = rng.choice(("header", "value", "no_value_check")) if vulnerable else "safe"
    loop_condition = f"{position} < {length}" if mode == "header" else fn.pick(
        (f"{position} + 1 < {length}", f"{position} + 2 <= {length}"))
    body = [f"{kind} = {data}[{position}];", f"{item_length} = {data}[{position} + 1];"]
    if mode == "value":
        wrong = fn.pick((f"{item_length} > {length}", f"{item_length} == 0"))
        body += fn.guard(wrong, [fn.pick(("break;", "return -1;"))])
    elif mode == "no_value_check":
        pass
    else:
        body += fn.guard(f"{item_length} > {length} - {position} - 2", [fn.pick(("break;", "return -1;"))])
    body += fn.sink(kind, f"{data} + {position} + 2", item_length)
    body.append(f"{position} += 2 + {item_length};")
    fn.body += [f"while ({loop_condition}) {{", *_indent(body), "}"]


def _oob_read_scan(fn: _Function, vulnerable: bool) -> None:
    """Scan for a delimiter: the bound must be tested before the byte is read."""
    rng = fn.rng
    text = fn.param(fn.pick(("const char *", "const uint8_t *")), _SOURCE_STEMS)
    length = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    index = _index_var(fn)
    delimiter = fn.pick(("':'", "'='", "';'", "' '", "'\\n'", "','", "0"))
    condition = (f"{text}[{index}] != {delimiter} && {index} < {length}" if vulnerable
                 else f"{index} < {length} && {text}[{index}] != {delimiter}")
    if rng.random() < 0.5:
        fn.body += [f"{index} = 0;", f"while ({condition})", f"    {index}++;"]
    else:
        fn.body += [f"for ({index} = 0; {condition}; {index}++)", "    ;"]
    fn.body += fn.sink(text, index)


def _oob_read_copy(fn: _Function, vulnerable: bool) -> None:
    """Copy `n` bytes at an offset out of a source buffer."""
    source = fn.param("const char *", _SOURCE_STEMS)
    source_length = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    offset = fn.param(fn.pick(_SIZE_TYPES), ("off", "offset", "start", "pos", "skip"))
    size = _cap(fn)
    out = fn.array("char", _BUFFER_STEMS, size)
    count = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    fn.body += fn.guard(f"{count} > sizeof({out})")
    if vulnerable:
        condition = fn.pick((f"{count} > {source_length}", f"{offset} > {source_length}", None, None))
    else:
        condition = f"{offset} > {source_length} || {count} > {source_length} - {offset}"
    if condition:
        fn.body += fn.guard(condition)
    fn.body.append(f"memcpy({out}, {source} + {offset}, {count});")
    fn.body += fn.sink(out, count)


def _use_after_free_error_path(fn: _Function, vulnerable: bool) -> None:
    """Freed on an error path, used afterwards unless the pointer was reset or we returned."""
    rng = fn.rng
    element = fn.pick(_ELEM_TYPES)
    pointer = fn.local(f"{element} *", _BUFFER_STEMS)
    size = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    flag = fn.param("int", ("flags", "mode", "opts", "strict", "retry"))
    fn.body.append(f"{pointer} = malloc({size});")
    fn.body += fn.guard(_is_null(rng, pointer))
    fn.body += fn.sink(pointer, size)
    error_body = [f"free({pointer});"]
    if not vulnerable:
        error_body.append(fn.pick((f"{pointer} = NULL;", f"{pointer} = NULL;", "return -1;")))
    elif rng.random() < 0.3:
        error_body.append(f"{flag} = 0;")  # resets something, but not the pointer
    condition = fn.pick((f"{flag} & 0x{rng.randint(1, 8):x}", f"{flag} < 0", f"{size} > {_cap(fn)}"))
    fn.body += _if(rng, condition, error_body)
    use = f"{fn.pick(_HELPER_VERBS)}_{fn.pick(_NOUNS)}({pointer}, {size});"
    returned_early = "return -1;" in error_body
    # Testing the pointer only helps when it was reset; it looks protective either way.
    fn.body += _if(rng, _not_null(rng, pointer), [use]) if rng.random() < 0.5 or not returned_early else [use]
    if not fn.goto_style:
        fn.body.append(f"free({pointer});")
    else:
        fn.cleanup.append(f"free({pointer});")


def _use_after_free_list(fn: _Function, vulnerable: bool) -> None:
    """Free a linked list: read `next` before the node is freed."""
    rng = fn.rng
    struct = f"struct {fn.pick(_NOUNS)}_{fn.pick(('node', 'entry', 'elem', 'item', 'link'))}"
    node = fn.local(f"{struct} *", ("node", "cur", "n", "e", "it", "p"))
    following = fn.local(f"{struct} *", ("next", "tmp", "nxt", "succ"))
    head = fn.param(f"{struct} *", ("head", "list", "first", "root"))
    fn.body.append(f"{node} = {head};")
    if vulnerable:
        body = fn.pick(([f"free({node});", f"{node} = {node}->next;"],
                        [f"{following} = {node}->next;", f"free({node});", f"{node} = {node}->next;"],
                        [f"free({node}->{fn.pick(_FIELDS)}_buf);", f"free({node});", f"{following} = {node}->next;",
                         f"{node} = {following};"]))
    else:
        body = fn.pick(([f"{following} = {node}->next;", f"free({node});", f"{node} = {following};"],
                        [f"{following} = {node}->next;", f"free({node}->{fn.pick(_FIELDS)}_buf);", f"free({node});",
                         f"{node} = {following};"]))
    fn.body += [f"while ({_not_null(rng, node)}) {{", *_indent(body), "}"]


def _use_after_free_release_order(fn: _Function, vulnerable: bool) -> None:
    """Free and last use in the wrong order: the same statements, swapped."""
    rng = fn.rng
    struct = f"struct {fn.pick(_NOUNS)}_{fn.pick(_STRUCT_SUFFIXES)}"
    obj = fn.param(f"{struct} *", ("obj", "req", "item", "conn", "job", "msg", "entry"))
    member = fn.pick(_FIELDS)
    if rng.random() < 0.5:
        result = fn.local(fn.pick(("int", "long", "unsigned int")), ("status", "result", "code", "last", "saved"))
        read = f"{result} = {obj}->{member};"
        fn.body += [f"free({obj});", read] if vulnerable else [read, f"free({obj});"]
        fn.body += fn.sink(result)
        return
    report = f"{fn.pick(_HELPER_VERBS)}_{fn.pick(_NOUNS)}({fn.ctx()}, {obj}->{member});"
    body = [f"free({obj});", report] if vulnerable else [report, f"free({obj});"]
    condition = fn.pick((f"{obj}->{fn.pick(_FIELDS)} == 0", f"--{obj}->refs == 0", f"{obj}->{fn.pick(_FIELDS)} < 0"))
    fn.body += _if(rng, condition, body)


def _use_after_free_member(fn: _Function, vulnerable: bool) -> None:
    """A struct member freed on reset and printed later."""
    rng = fn.rng
    obj = fn.ctx()
    member = fn.pick(("name", "buf", "data", "path", "label", "key", "host"))
    reset = fn.param("int", ("reset", "reload", "drop", "clear", "force"))
    body = [f"free({obj}->{member});"]
    if not vulnerable:
        body.append(f"{obj}->{member} = NULL;")
    body.append(f"{obj}->{fn.pick(_FIELDS)} = 0;")
    fn.body += _if(rng, reset, body)
    fn.body += _if(rng, _not_null(rng, f"{obj}->{member}"),
                   [fn.pick((f'printf("%s\\n", {obj}->{member});', f"{fn.counter()} += strlen({obj}->{member});",
                             f"{fn.pick(_HELPER_VERBS)}_{fn.pick(_NOUNS)}({obj}->{member});"))])


def _double_free_cleanup(fn: _Function, vulnerable: bool) -> None:
    """Error path frees, then jumps to the common cleanup that frees again."""
    rng = fn.rng
    fn.goto_style = True
    _ensure_status(fn)
    element = fn.pick(_ELEM_TYPES)
    first = fn.local(f"{element} *", _BUFFER_STEMS)
    second = fn.local(f"{element} *", _BUFFER_STEMS)
    size = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    for pointer in (first, second):
        fn.body.append(f"{pointer} = malloc({size});")
        fn.body += fn.guard(_is_null(rng, pointer))
    step = f"{fn.pick(_VERBS)}_{fn.pick(_NOUNS)}({first}, {second}, {size})"
    error_body = [f"free({first});"]
    if vulnerable:
        if rng.random() < 0.3:
            error_body.append(f"{second} = NULL;")  # resets the wrong pointer
    else:
        error_body = fn.pick(([f"free({first});", f"{first} = NULL;"], []))
    error_body += fn.fail()
    fn.body += _if(rng, f"{step} < 0", error_body)
    fn.body += fn.sink(second, size)
    fn.cleanup += [f"free({first});", f"free({second});"]


def _double_free_flag(fn: _Function, vulnerable: bool) -> None:
    """Conditional early free followed by the unconditional one."""
    rng = fn.rng
    pointer = fn.local(f"{fn.pick(_ELEM_TYPES)} *", _BUFFER_STEMS)
    size = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    fn.body.append(f"{pointer} = {fn.pick(('malloc', 'xmalloc'))}({size});")
    fn.body += fn.guard(_is_null(rng, pointer))
    fn.body += fn.sink(pointer, size)
    condition = fn.pick((f"{fn.ctx()}->{fn.pick(_FIELDS)} == 0", f"{size} < {rng.randint(2, 64)}"))
    body = [f"free({pointer});"] + ([] if vulnerable else [f"{pointer} = NULL;"])
    fn.body += _if(rng, condition, body)
    fn.body.append(f"free({pointer});")


def _null_deref_alloc(fn: _Function, vulnerable: bool) -> None:
    """malloc/calloc result used without (or before, or with the wrong) NULL check."""
    rng = fn.rng
    element = fn.pick(("int", "char", "uint32_t", "struct " + fn.pick(_NOUNS)))
    pointer = fn.local(f"{element} *", _BUFFER_STEMS)
    count = fn.param(fn.pick(_SIZE_TYPES), _LENGTH_STEMS)
    fn.body.append(fn.pick((f"{pointer} = malloc({count} * sizeof(*{pointer}));",
                            f"{pointer} = calloc({count}, sizeof(*{pointer}));")))
    use = [f"memset({pointer}, 0, {count} * sizeof(*{pointer}));"] if "struct" not in element else []
    use.append(f"{pointer}[0] = {fn.pick(('0', '1', count))};" if "struct" not in element
               else f"{pointer}->{fn.pick(_FIELDS)} = {count};")
    mode = rng.choice(("missing", "missing", "after_use", "wrong_variable")) if vulnerable else "checked"
    if mode == "checked":
        fn.body += fn.guard(_is_null(rng, pointer))
        fn.body += use
    elif mode == "after_use":
        fn.body += use
        fn.body += fn.guard(_is_null(rng, pointer))
    elif mode == "wrong_variable":
        fn.body += fn.guard(_is_null(rng, fn.ctx()))
        fn.body += use
    else:
        fn.body += use
    fn.body += fn.sink(pointer, count)
    (fn.cleanup if fn.goto_style else fn.body).append(f"free({pointer});")


def _null_deref_lookup(fn: _Function, vulnerable: bool) -> None:
    """A lookup that can fail; warning without leaving still dereferences."""
    rng = fn.rng
    struct = f"struct {fn.pick(_NOUNS)}_{fn.pick(('entry', 'node', 'rec', 'item', 'slot'))}"
    found = fn.local(f"{struct} *", ("e", "ent", "found", "rec", "match", "hit"))
    key = fn.param(fn.pick(("const char *", "int", "uint32_t")), ("key", "id", "name", "tag", "hash"))
    fn.body.append(f"{found} = {fn.pick(('find', 'lookup', 'get', 'search'))}_{fn.pick(_NOUNS)}({fn.ctx()}, {key});")
    mode = rng.choice(("missing", "missing", "warn_only")) if vulnerable else "checked"
    if mode == "checked":
        fn.body += fn.guard(_is_null(rng, found))
    elif mode == "warn_only":
        fn.body += _if(rng, _is_null(rng, found), [f'{fn.pick(_WARN_CALLS)}("no {fn.pick(_NOUNS)}");'])
    field_name = fn.pick(_FIELDS)
    fn.body.append(fn.pick((f"{found}->{field_name}++;", f"{fn.counter()} += {found}->{field_name};",
                            f"{found}->{field_name} = {fn.ctx()}->{fn.pick(_FIELDS)};")))


def _integer_overflow_alloc(fn: _Function, vulnerable: bool) -> None:
    """count * size wraps, the allocation is small, the fill loop writes count elements."""
    rng = fn.rng
    count = fn.param(fn.pick(("size_t", "uint32_t", "unsigned int", "size_t")), ("count", "n", "nmemb", "nr", "num"))
    element_size = fn.param("size_t", ("size", "elem_size", "esz", "stride", "width"))
    total = fn.local("size_t", ("total", "bytes", "need", "alloc_len"))
    pointer = fn.local("unsigned char *", _BUFFER_STEMS)
    header = f"sizeof(struct {fn.pick(_NOUNS)}_hdr)"
    if vulnerable:
        mode = rng.choice(("missing", "too_weak", "too_late", "header_unchecked"))
    else:
        mode = rng.choice(("division", "division", "header_checked", "builtin"))
    if mode == "builtin":
        fn.body += fn.guard(f"__builtin_mul_overflow({count}, {element_size}, &{total})")
    elif mode in ("header_checked", "header_unchecked"):
        # The product is checked in both; only the fixed form leaves room for the header too.
        room = f"(SIZE_MAX - {header})" if mode == "header_checked" else "SIZE_MAX"
        fn.body += fn.guard(f"{element_size} == 0 || {count} > {room} / {element_size}")
        fn.body.append(f"{total} = {count} * {element_size} + {header};")
    else:
        if mode == "division":
            fn.body += fn.guard(fn.pick((f"{element_size} != 0 && {count} > SIZE_MAX / {element_size}",
                                         f"{count} != 0 && {element_size} > SIZE_MAX / {count}")))
        elif mode == "too_weak":
            fn.body += fn.guard(fn.pick((f"{count} == 0 || {element_size} == 0", f"{count} > INT_MAX")))
        fn.body.append(f"{total} = {count} * {element_size};")
        if mode == "too_late":
            fn.body += fn.guard(f"{total} > {fn.pick(_CAP_MACROS)} * 1024")
    fn.body.append(f"{pointer} = malloc({total});")
    fn.body += fn.guard(_is_null(rng, pointer))
    index = _index_var(fn)
    fn.body += _loop(rng, index, "0", f"{index} < {count}",
                     fn.sink(f"{pointer} + {index} * {element_size}", element_size))
    (fn.cleanup if fn.goto_style else fn.body).append(f"free({pointer});")


def _integer_overflow_dimensions(fn: _Function, vulnerable: bool) -> None:
    """width * height * bpp computed in 32 bits for the allocation; rows are written in full."""
    rng = fn.rng
    width = fn.param(fn.pick(("unsigned int", "uint32_t", "size_t")), ("w", "width", "cols", "nx"))
    height = fn.param(fn.pick(("unsigned int", "uint32_t", "size_t")), ("h", "height", "rows", "ny"))
    bpp = fn.pick(("4", "3", "2", "sizeof(uint32_t)"))
    total_type = fn.pick(("int", "unsigned int", "uint32_t"))
    limit = "INT_MAX" if total_type == "int" else fn.pick(("UINT32_MAX", "UINT_MAX"))
    total = fn.local(total_type, ("total", "bytes", "img_size", "alloc_len", "need"))
    stride = fn.local("size_t", ("stride", "pitch", "linesize", "row_bytes"))
    pixels = fn.local("uint8_t *", ("pix", "pixels", "img", "plane", "raster"))
    fn.body += fn.guard(f"{width} == 0 || {height} == 0")
    if not vulnerable:
        fn.body += fn.guard(fn.pick((f"{width} > {limit} / {bpp} / {height}", f"{height} > {limit} / {bpp} / {width}")))
    elif rng.random() < 0.5:
        fn.body += fn.guard(f"{width} > {limit} || {height} > {limit}")  # each fits, the product may not
    fn.body.append(f"{total} = {width} * {height} * {bpp};")
    fn.body.append(f"{stride} = (size_t){width} * {bpp};")
    fn.body.append(f"{pixels} = malloc({total});")
    fn.body += fn.guard(_is_null(rng, pixels))
    row = _index_var(fn)
    fn.body += _loop(rng, row, "0", f"{row} < {height}", fn.sink(f"{pixels} + {row} * {stride}", stride))
    (fn.cleanup if fn.goto_style else fn.body).append(f"free({pixels});")


def _format_string(fn: _Function, vulnerable: bool) -> None:
    """Caller text as a format string (or a constant format kept in a variable: safe)."""
    rng = fn.rng
    text = fn.param("const char *", ("msg", "text", "name", "user", "fmt_arg", "line", "reason", "title"))
    shape = rng.random()
    if shape < 0.4:
        prefix = fn.pick(("printf(", "fprintf(stderr, ", "syslog(LOG_ERR, ", "fprintf(fp_log, "))
        if rng.random() < 0.4:  # a correct call on another value, in either class
            fn.body.append(f'{prefix}"%s", {fn.param("const char *", ("prefix", "tag", "who", "host"))});')
        fn.body.append(f"{prefix}{text});" if vulnerable else f'{prefix}"%s", {text});')
    elif shape < 0.7:
        size = _cap(fn)
        out = fn.array("char", _BUFFER_STEMS, size)
        fn.body.append(f"snprintf({out}, sizeof({out}), {text});" if vulnerable
                       else f'snprintf({out}, sizeof({out}), "%s", {text});')
        fn.body += fn.sink(out)
    elif shape < 0.85:
        size = _cap(fn)
        staging = fn.array("char", _BUFFER_STEMS, size)
        fn.body.append(fn.pick((
            f'snprintf({staging}, sizeof({staging}), "%s: %s", {fn.pick(_quoted_nouns())}, {text});',
            f'snprintf({staging}, sizeof({staging}), "%s", {text});',
        )))
        fn.body.append(f"printf({staging});" if vulnerable else f'printf("%s", {staging});')
    else:
        fmt = fn.local("const char *", ("fmt", "format", "pattern", "tmpl"))
        if vulnerable:
            fn.body.append(f"{fmt} = {text};")
        else:
            fn.body.append(f'{fmt} = "%s: %d\\n";')
        fn.body.append(f'printf({fmt}, {fn.pick(_quoted_nouns())}, {rng.randint(0, 99)});'
                       if not vulnerable else f"printf({fmt});")


def _quoted_nouns() -> tuple[str, ...]:
    return tuple(f'"{noun}"' for noun in _NOUNS[:12])


def _unchecked_read(fn: _Function, vulnerable: bool) -> None:
    """read() may return -1; indexing with it writes before the buffer."""
    rng = fn.rng
    descriptor = fn.param("int", ("fd", "sock", "sd", "pipe_fd", "dev_fd"))
    size = _cap(fn)
    buffer = fn.array("char", _BUFFER_STEMS, size)
    got = fn.local("ssize_t", ("r", "got", "nread", "n", "ret_len"))
    fn.body.append(f"{got} = {fn.pick(('read', 'recv_all', 'read'))}({descriptor}, {buffer}, sizeof({buffer}) - 1);")
    if vulnerable:
        if rng.random() < 0.4:
            fn.body += fn.guard(f"{descriptor} < 0")  # checks the descriptor, not the result
    else:
        fn.body += fn.guard(fn.pick((f"{got} < 0", f"{got} <= 0", f"{got} == -1")))
    fn.body.append(f"{buffer}[{got}] = '\\0';")
    fn.body += fn.sink(buffer, got)


def _unchecked_fgets(fn: _Function, vulnerable: bool) -> None:
    rng = fn.rng
    stream = fn.param("FILE *", ("fp", "f", "in", "stream", "file"))
    size = _cap(fn)
    line = fn.array("char", ("line", "buf", "row", "header", "first"), size)
    call = f"fgets({line}, sizeof({line}), {stream})"
    if vulnerable:
        fn.body.append(f"{call};")
        if rng.random() < 0.4:
            fn.body += fn.guard(f"ferror({stream})")  # checked the wrong thing
    else:
        fn.body += fn.guard(fn.pick((f"{call} == NULL", f"!{call}")))
    fn.body.append(f"{line}[strcspn({line}, \"\\n\")] = '\\0';")
    fn.body += fn.sink(line)


def _unchecked_privilege_drop(fn: _Function, vulnerable: bool) -> None:
    """setgid/setuid failing leaves the process privileged."""
    rng = fn.rng
    uid = fn.param("uid_t", ("uid", "user_id", "run_uid", "owner"))
    gid = fn.param("gid_t", ("gid", "group_id", "run_gid", "grp"))
    calls = [f"setgid({gid})", f"setuid({uid})"]
    if vulnerable:
        if rng.random() < 0.5:
            fn.body += [f"{call};" for call in calls]
        else:
            fn.body.append(f"{calls[0]};")
            fn.body += fn.guard(f"{calls[1]} != 0")  # only one of the two checked
    else:
        if rng.random() < 0.5:
            fn.body += fn.guard(f"{calls[0]} != 0 || {calls[1]} != 0")
        else:
            for call in calls:
                fn.body += fn.guard(f"{call} != 0")
    fn.body += fn.sink(f"{fn.ctx()}->{fn.pick(_FIELDS)}")


@dataclass(frozen=True)
class Family:
    """A vulnerability family: its CWE and the snippet shapes that can express it."""

    name: str
    cwe: str
    shapes: tuple[Callable[[_Function, bool], None], ...]


FAMILIES: tuple[Family, ...] = (
    Family("oob_write", "CWE-787", (_oob_write_copy, _oob_write_loop, _oob_write_index, _oob_write_string)),
    Family("oob_read", "CWE-125", (_oob_read_lookup, _oob_read_tlv, _oob_read_scan, _oob_read_copy)),
    Family("use_after_free", "CWE-416", (_use_after_free_error_path, _use_after_free_list, _use_after_free_member,
                                                   _use_after_free_release_order)),
    Family("double_free", "CWE-415", (_double_free_cleanup, _double_free_flag)),
    Family("null_deref", "CWE-476", (_null_deref_alloc, _null_deref_lookup)),
    Family("integer_overflow_alloc", "CWE-190", (_integer_overflow_alloc, _integer_overflow_dimensions)),
    Family("format_string", "CWE-134", (_format_string,)),
    Family("unchecked_return", "CWE-252", (_unchecked_read, _unchecked_fgets, _unchecked_privilege_drop)),
)
