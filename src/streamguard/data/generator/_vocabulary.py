"""Word lists the generated functions draw names, types, sizes and calls from."""

from __future__ import annotations


# --- vocabularies -------------------------------------------------------------------------

_BUFFER_STEMS = ("buf", "data", "out", "dst", "dest", "tmp", "scratch", "line", "frame", "block", "chunk",
                 "payload", "bytes", "mem", "store", "copy", "name", "path", "label", "field", "text", "word")
_SOURCE_STEMS = ("src", "input", "raw", "msg", "pkt", "packet", "req", "arg", "str", "value", "token", "blob")
_LENGTH_STEMS = ("len", "n", "size", "count", "nbytes", "length", "sz", "num", "cnt", "avail", "want", "used")
_INDEX_STEMS = ("i", "j", "k", "idx", "pos", "off", "cur", "slot", "at", "ix")
_OBJECT_STEMS = ("ctx", "st", "state", "dev", "conn", "sess", "obj", "priv", "h", "hdl", "self", "info", "env")
_NOUNS = ("header", "packet", "frame", "record", "entry", "token", "chunk", "block", "name", "path", "key",
          "option", "attr", "segment", "message", "field", "sample", "page", "cell", "descriptor", "table",
          "buffer", "request", "reply", "session", "config", "node", "item", "stream", "image", "glyph")
_VERBS = ("parse", "read", "load", "copy", "decode", "encode", "handle", "process", "fill", "build", "emit",
          "store", "update", "append", "scan", "init", "reset", "apply", "push", "pack", "unpack", "fetch")
_HELPER_VERBS = ("process", "handle", "emit", "consume", "dispatch", "store", "update", "push", "apply",
                 "send", "validate", "write", "encode", "record", "queue", "submit", "hash", "checksum")
_FIELDS = ("count", "flags", "len", "state", "nr_items", "total", "errors", "pos", "seq", "mode", "refs", "gen")
_STRUCT_SUFFIXES = ("ctx", "state", "info", "desc", "priv", "conf", "table", "list", "reader", "writer")
_ELEM_TYPES = ("char", "unsigned char", "uint8_t", "u8", "guchar", "char")
_SIZE_TYPES = ("size_t", "unsigned int", "uint32_t", "size_t", "unsigned long", "u32")
_SIGNED_TYPES = ("int", "long", "int32_t", "int", "ssize_t")
_CAPS = ("16", "32", "64", "128", "256", "512", "1024", "4096")
_CAP_MACROS = ("MAX_NAME", "BUF_SIZE", "MAX_PATH_LEN", "HDR_MAX", "TOKEN_MAX", "LINE_MAX_LEN", "MAX_KEY_LEN",
               "NAME_LEN", "MAX_LABEL", "FRAME_MAX")
_ERROR_CODES = ("-1", "-EINVAL", "-ENOMEM", "-EIO", "ERR_BOUNDS", "-1", "-EFAULT", "ERR_FORMAT", "-ENOSPC")
_RETURN_TYPES = ("int", "static int", "int", "static int", "long", "static long", "ssize_t", "static ssize_t")
_LOG_CALLS = ("log_debug", "pr_debug", "trace", "dbg_print", "LOG_DBG", "av_log_debug")
_WARN_CALLS = ("log_warn", "pr_warn", "log_error", "LOG_ERR", "warnx", "report_error")
_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile "
    "while".split()
)
