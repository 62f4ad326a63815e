"""Identifier normalisation for C functions: user-defined names -> ``VAR_n`` / ``FUNC_n``.

A model that reads source text can learn project-specific names (``s->avctx``, ``qemu_*``)
instead of what the code does. :func:`normalize_identifiers` rewrites one function so that every
user-defined variable, parameter or function name becomes a placeholder numbered by first
appearance (``VAR_1``, ``VAR_2``, ..., ``FUNC_1``, ...), consistently within the function, while
everything that carries meaning beyond the function is kept:

* C keywords and types (the grammar's own tokens: ``int``, ``size_t``, ``struct foo``; tree-sitter
  reports them as keywords, ``primitive_type`` or ``type_identifier``, never as identifiers);
* struct/union fields (``field_identifier``: ``->len``, ``.size``) and goto labels;
* macros and constants written in capitals (``NULL``, ``EINVAL``, ``AV_LOG_ERROR``), with
  ``keep_macros`` (default on);
* the C standard library, common POSIX calls and the allocation / logging APIs of FFmpeg, QEMU
  and GLib (``memcpy``, ``strcpy``, ``malloc``, ``free``, ``av_malloc``, ``g_free``, ...):
  :data:`KEPT_NAMES`, extendable with ``keep``;
* comments, string and character literals, numbers, layout: untouched.

A name is ``FUNC_n`` when it is called (``name(...)``) or declared as a function
(``int name(...)``) at its first occurrence, else ``VAR_n``; a name keeps its first placeholder
for every later occurrence, so data flow through a variable stays visible.

Parsing is tree-sitter-c's (as the graph builder and ``streamguard scan``), which recovers from
syntax errors: macros the grammar does not understand leave ERROR nodes whose identifiers are
still renamed, and no input raises. This module is standalone: the data pipeline does not call it.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable

import tree_sitter
import tree_sitter_c

__all__ = ["C_KEYWORDS", "KEPT_NAMES", "IdentifierNormalizer", "normalize_identifiers"]

C_KEYWORDS: frozenset[str] = frozenset(
    """auto break case char const continue default do double else enum extern float for goto if inline int long
    register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
    _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local
    asm __asm__ __attribute__ __inline __inline__ __restrict __restrict__ __volatile__ __extension__ typeof __typeof__
    bool true false NULL nullptr
    size_t ssize_t ptrdiff_t intptr_t uintptr_t off_t int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t
    FILE va_list""".split()
)

_LIBC = """
memcpy memmove memset memcmp memchr strcpy strncpy strcat strncat strcmp strncmp strcasecmp strncasecmp strlen
strnlen strchr strrchr strstr strtok strtok_r strdup strndup strspn strcspn strpbrk strerror strtol strtoul strtoll
strtoull strtod strtof atoi atol atoll atof
malloc calloc realloc free alloca posix_memalign aligned_alloc
printf fprintf sprintf snprintf vprintf vfprintf vsprintf vsnprintf scanf fscanf sscanf puts fputs putchar fputc
putc getchar getc fgetc gets fgets fopen fclose fread fwrite fseek ftell rewind fflush feof ferror perror
open close read write lseek pread pwrite ioctl fcntl mmap munmap stat fstat lstat unlink rename mkdir rmdir
socket bind listen accept connect send recv sendto recvfrom setsockopt getsockopt select poll
exit abort assert atexit getenv setenv system exec execl execv execve execvp fork waitpid kill signal raise
setuid setgid seteuid setegid getuid getgid chown chmod chroot umask
qsort bsearch abs labs llabs rand srand time clock sleep usleep
isalpha isdigit isalnum isspace isupper islower isxdigit isprint ispunct toupper tolower
va_start va_end va_arg va_copy offsetof
pthread_mutex_lock pthread_mutex_unlock pthread_create pthread_join
errno stdin stdout stderr main
"""
# Allocation, copy, logging and error APIs of the projects in Devign (FFmpeg, QEMU) and GLib.
_PROJECT_APIS = """
av_malloc av_mallocz av_calloc av_malloc_array av_mallocz_array av_realloc av_realloc_f av_realloc_array
av_reallocp av_reallocp_array av_fast_malloc av_fast_realloc av_fast_padded_malloc av_free av_freep av_strdup
av_memdup av_log av_assert0 av_assert1 av_assert2 av_clip av_clip_uint8 av_clip_int16 av_clipf
av_new_packet av_packet_unref av_free_packet av_frame_alloc av_frame_free av_frame_unref av_buffer_unref
av_image_check_size av_get_bytes_per_sample
g_malloc g_malloc0 g_malloc_n g_malloc0_n g_new g_new0 g_renew g_realloc g_free g_strdup g_strndup g_strdup_printf
g_memdup g_assert g_assert_not_reached g_return_if_fail g_return_val_if_fail
qemu_malloc qemu_mallocz qemu_realloc qemu_free qemu_vmalloc qemu_vfree qemu_memalign qemu_strdup
error_setg error_setg_errno error_report error_propagate error_free fprintf_stderr
cpu_physical_memory_read cpu_physical_memory_write cpu_physical_memory_rw dma_memory_read dma_memory_write
address_space_read address_space_write address_space_rw
"""
#: Library and API names kept verbatim (besides keywords and capitalised macros).
KEPT_NAMES: frozenset[str] = frozenset(_LIBC.split()) | frozenset(_PROJECT_APIS.split()) | C_KEYWORDS

_MACRO = re.compile(r"[A-Z_][A-Z0-9_]+\Z")
_PLACEHOLDER = re.compile(r"(VAR|FUNC)_\d+\Z")


@functools.cache
def _language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_c.language())


@functools.cache
def _identifier_query() -> tree_sitter.Query:
    return tree_sitter.Query(_language(), "(identifier) @name")


_local = threading.local()


def _parser() -> tree_sitter.Parser:
    """One parser per thread (tree-sitter parsers are not thread-safe)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = tree_sitter.Parser(_language())
    return parser


def _is_function_name(node: tree_sitter.Node) -> bool:
    parent = node.parent
    if parent is None:
        return False
    if parent.type == "call_expression":
        callee = parent.child_by_field_name("function")
        return callee is not None and callee.id == node.id
    if parent.type == "function_declarator":
        declarator = parent.child_by_field_name("declarator")
        return declarator is not None and declarator.id == node.id
    return False


class IdentifierNormalizer:
    """Callable ``code -> code`` with the user-defined identifiers replaced (see the module doc).

    ``keep`` adds names to :data:`KEPT_NAMES`; ``keep_macros`` keeps capitalised names
    (``[A-Z_][A-Z0-9_]+``); ``var_prefix`` / ``func_prefix`` name the placeholders.
    """

    def __init__(
        self,
        keep: Iterable[str] = (),
        *,
        keep_macros: bool = True,
        var_prefix: str = "VAR",
        func_prefix: str = "FUNC",
    ) -> None:
        self.kept = KEPT_NAMES | frozenset(keep)
        self.keep_macros = keep_macros
        self.var_prefix = var_prefix
        self.func_prefix = func_prefix

    def is_kept(self, name: str) -> bool:
        return name in self.kept or (self.keep_macros and _MACRO.match(name) is not None) or _PLACEHOLDER.match(name) is not None

    def mapping(self, code: str) -> dict[str, str]:
        """The replacement of every renamed identifier of ``code``, in order of first appearance."""
        return self._rename(code)[1]

    def __call__(self, code: str) -> str:
        return self._rename(code)[0]

    def _rename(self, code: str) -> tuple[str, dict[str, str]]:
        if not code:
            return code, {}
        source = code.encode("utf-8", errors="surrogatepass")
        tree = _parser().parse(source)
        captured = tree_sitter.QueryCursor(_identifier_query()).captures(tree.root_node).get("name", [])
        nodes = sorted(captured, key=lambda n: n.start_byte)
        mapping: dict[str, str] = {}
        counters = {"VAR": 0, "FUNC": 0}
        edits: list[tuple[int, int, bytes]] = []
        for node in nodes:
            name = source[node.start_byte:node.end_byte].decode("utf-8", errors="surrogatepass")
            if not name or self.is_kept(name):
                continue
            replacement = mapping.get(name)
            if replacement is None:
                kind = "FUNC" if _is_function_name(node) else "VAR"
                counters[kind] += 1
                prefix = self.func_prefix if kind == "FUNC" else self.var_prefix
                replacement = mapping[name] = f"{prefix}_{counters[kind]}"
            edits.append((node.start_byte, node.end_byte, replacement.encode("ascii")))
        if not edits:
            return code, mapping
        pieces, last = [], 0
        for start, end, text in edits:
            if start < last:  # overlapping captures cannot happen for leaves; be safe anyway
                continue
            pieces += [source[last:start], text]
            last = end
        pieces.append(source[last:])
        return b"".join(pieces).decode("utf-8", errors="surrogatepass"), mapping


@functools.cache
def _default() -> IdentifierNormalizer:
    return IdentifierNormalizer()


def normalize_identifiers(code: str) -> str:
    """``code`` with user-defined identifiers replaced by ``VAR_n`` / ``FUNC_n`` (default settings)."""
    return _default()(code)
