"""Noise: statements unrelated to the label, in both classes."""

from __future__ import annotations

from collections.abc import Callable

from streamguard.data.generator._vocabulary import _CAPS, _FIELDS, _LOG_CALLS, _NOUNS, _SIZE_TYPES, _VERBS
from streamguard.data.generator._function import _Function, _cap, _if, _index_var, _is_null, _loop


# --- noise: statements unrelated to the label ----------------------------------------------


def _noise_log(fn: _Function) -> list[str]:
    call = fn.pick(_LOG_CALLS)
    if fn.rng.random() < 0.5:  # "%s" formats in both classes, not only in fixed format-string code
        return [f'{call}("%s: {fn.pick(_NOUNS)} %d", __func__, {fn.counter()});']
    return [f'{call}("{fn.pick(_NOUNS)} %d", {fn.counter()});']


def _noise_arithmetic(fn: _Function) -> list[str]:
    rng = fn.rng
    target = fn.counter()
    return [fn.pick((f"{target} += {rng.randint(1, 9)};", f"{target} = {target} * {rng.randint(2, 7)} + 1;",
                     f"{target} ^= 0x{rng.randint(16, 255):x};", f"{target}++;", f"{target} >>= 1;",
                     f"{target} /= {rng.randint(2, 9)};", f"{target} = ({target} + {rng.randint(1, 9)}) / 2;"))]


def _noise_field(fn: _Function) -> list[str]:
    ctx = fn.ctx()
    rng = fn.rng
    return [fn.pick((f"{ctx}->{fn.pick(_FIELDS)}++;", f"{ctx}->{fn.pick(_FIELDS)} = {rng.randint(0, 16)};",
                     f"{ctx}->{fn.pick(_FIELDS)} |= 0x{1 << rng.randint(0, 7):x};",
                     f"{ctx}->stats.{fn.pick(_FIELDS)} += {fn.counter()};"))]


def _noise_verbose(fn: _Function) -> list[str]:
    ctx = fn.ctx()
    body = [f'fprintf(stderr, "{fn.pick(_VERBS)} {fn.pick(_NOUNS)}: %d\\n", {ctx}->{fn.pick(_FIELDS)});']
    return _if(fn.rng, f"{ctx}->{fn.pick(('verbose', 'debug', 'trace'))}", body)


def _noise_param_check(fn: _Function) -> list[str]:
    return fn.guard(_is_null(fn.rng, fn.ctx()), log=False)


def _noise_sum_loop(fn: _Function) -> list[str]:
    rng = fn.rng
    values_type = fn.pick(("const int *", "const uint16_t *", "const long *"))
    values = fn.param(values_type, ("vals", "weights", "w", "coef", "hist"))
    count = fn.param(fn.pick(_SIZE_TYPES), ("nvals", "nw", "ncoef", "bins", "m"))
    index = _index_var(fn)
    target = fn.counter()
    return _loop(rng, index, "0", f"{index} < {count}", [f"{target} += {values}[{index}];"])


def _noise_do_while(fn: _Function) -> list[str]:
    target = fn.counter()
    limit = fn.rng.randint(3, 12)
    return ["do {", f"    {target} = {fn.pick(('next_state', 'step', 'advance'))}({target});",
            f"}} while ({target} != 0 && {target} < {limit});"]


def _noise_switch(fn: _Function) -> list[str]:
    ctx = fn.ctx()
    target = fn.counter()
    rng = fn.rng
    cases = []
    for value in sorted(rng.sample(range(6), 2)):
        cases += [f"case {value}:", f"    {target} += {rng.randint(1, 5)};", "    break;"]
    return [f"switch ({ctx}->{fn.pick(('mode', 'state', 'kind', 'type'))}) {{", *cases, "default:", "    break;", "}"]


def _noise_safe_string(fn: _Function) -> list[str]:
    """Scary-looking calls used correctly: both classes contain them."""
    rng = fn.rng
    size = _cap(fn)
    buffer = fn.array("char", ("label", "tag", "msg", "note", "desc", "title"), size)
    return fn.pick((
        [f'strncpy({buffer}, "{fn.pick(_NOUNS)}", sizeof({buffer}) - 1);', f"{buffer}[sizeof({buffer}) - 1] = '\\0';"],
        [f'snprintf({buffer}, sizeof({buffer}), "%s-%d", "{fn.pick(_NOUNS)}", {fn.counter()});', f"puts({buffer});"],
        [f"memset({buffer}, 0, sizeof({buffer}));"],
        [f'strcpy({buffer}, "{fn.pick(_NOUNS)[:rng.randint(2, 6)]}");'],
    ))


def _noise_scratch(fn: _Function) -> list[str]:
    """A short-lived allocation, checked and released: malloc/free appear in both classes."""
    rng = fn.rng
    pointer = fn.local("char *", ("tmp", "scratch", "work", "copy", "dup"))
    size = rng.choice(_CAPS)
    lines = [f"{pointer} = malloc({size});"]
    lines += _if(rng, _is_null(rng, pointer), fn.fail())
    lines += [f"memset({pointer}, 0, {size});", f"{fn.counter()} += {pointer}[0];", f"free({pointer});"]
    if rng.random() < 0.3:
        lines.append(f"{pointer} = NULL;")
    return lines


def _noise_early_return(fn: _Function) -> list[str]:
    ctx = fn.ctx()
    return _if(fn.rng, f"{ctx}->{fn.pick(_FIELDS)} == {fn.rng.randint(0, 3)}", ["return 0;"])


def _noise_else(fn: _Function) -> list[str]:
    target = fn.counter()
    ctx = fn.ctx()
    rng = fn.rng
    return _if(rng, f"{target} > {rng.randint(1, 100)}", [f"{ctx}->{fn.pick(_FIELDS)} = {target};"],
               [f"{target} = {rng.randint(0, 3)};"])


_NOISE: tuple[Callable[[_Function], list[str]], ...] = (
    _noise_log, _noise_arithmetic, _noise_field, _noise_verbose, _noise_param_check, _noise_sum_loop,
    _noise_do_while, _noise_switch, _noise_safe_string, _noise_scratch, _noise_early_return, _noise_else,
    _noise_log, _noise_arithmetic, _noise_field,
)
