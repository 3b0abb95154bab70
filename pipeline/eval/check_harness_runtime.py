"""The in-sandbox half of `pipeline.eval.check_harness`: the text of this file opens every graded main.py.

Stdlib only. `check_harness` appends the call `_harness_main(<spec>)`, and the sandbox runs the whole as
main.py; the rules it enforces are documented there. Importing this module (the parent does, for
`decode_plain`) defines names and takes the builtins snapshot below, nothing else.

Everything the harness uses after the graded code has run is bound here, before it runs: the functions
defined below resolve builtins through a private snapshot (a module-level `__builtins__` dict is what a
function created afterwards looks names up in), and `os.write`, `os._exit` etc. are held by reference, so
rebinding `builtins.len` or `os.write` from the graded code does not reach the harness.
"""

import builtins as _builtins_module
import json as _json
import os as _os
import sys as _sys
import types as _types

__builtins__ = dict(_builtins_module.__dict__)  # a private snapshot (see the docstring)
_SNAPSHOT = __builtins__

_write, _read, _exit = _os.write, _os.read, _os._exit
_settrace, _setprofile = _sys.settrace, _sys.setprofile
_modules = _sys.modules  # the dict itself: rebinding `sys.modules` later does not move it
_ModuleType = _types.ModuleType
_json_loads = _json.loads

# Hex characters of the per-run nonce (check_harness.NONCE_HEX), read from stdin's first line.
_NONCE_HEX = 32
# Containers nested deeper than this are not plain values (no dataset answer comes near it).
MAX_DEPTH = 100


class NotPlainValue(BaseException):
    """A graded value that is not a plain builtin value. BaseException: `except Exception` in a check
    cannot swallow it."""


def encode_plain(value, depth=0):
    """A plain value as a tree of lists and strs (printable with repr, read back with literal_eval).

    Exact types only, recursively: int, float, complex, str, bytes, bool, None, list, tuple, dict, set,
    frozenset. Anything else, a subclass of those included, raises NotPlainValue. No code of the value
    runs here: exact builtin types have no user-defined methods.
    """
    kind = type(value)
    if depth > MAX_DEPTH:
        raise NotPlainValue(f"nested deeper than {MAX_DEPTH} levels")
    if value is None:
        return ["None", ""]
    if kind is bool:
        return ["bool", "1" if value else "0"]
    if kind is int:
        return ["int", hex(value)]  # hex: no int-to-str digit limit, exact
    if kind is float:
        return ["float", value.hex()]  # exact, keeps inf, nan and -0.0
    if kind is complex:
        return ["complex", [value.real.hex(), value.imag.hex()]]
    if kind is str:
        return ["str", value]
    if kind is bytes:
        return ["bytes", value.hex()]
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        tag = "list" if kind is list else "tuple" if kind is tuple else "set" if kind is set else "frozenset"
        return [tag, [encode_plain(v, depth + 1) for v in value]]
    if kind is dict:
        return ["dict", [[encode_plain(k, depth + 1), encode_plain(v, depth + 1)] for k, v in value.items()]]
    raise NotPlainValue(f"a value of type {kind.__qualname__!r} is not a plain builtin value")


def decode_plain(node, depth=0):
    """The value `encode_plain` encoded (fresh objects); ValueError/TypeError on a malformed tree."""
    if depth > MAX_DEPTH + 1 or type(node) is not list or len(node) != 2 or type(node[0]) is not str:
        raise ValueError("malformed plain-value tree")
    tag, data = node
    if tag == "None":
        return None
    if tag == "bool":
        return data == "1"
    if tag == "int":
        return int(data, 16)
    if tag == "float":
        return float.fromhex(data)
    if tag == "complex":
        return complex(float.fromhex(data[0]), float.fromhex(data[1]))
    if tag == "str":
        if type(data) is not str:
            raise ValueError("malformed str node")
        return data
    if tag == "bytes":
        return bytes.fromhex(data)
    if tag == "dict":
        return {decode_plain(k, depth + 1): decode_plain(v, depth + 1) for k, v in data}
    items = [decode_plain(v, depth + 1) for v in data]
    kinds = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}
    if tag not in kinds:
        raise ValueError(f"unknown plain-value tag {tag!r}")
    return kinds[tag](items)


def _read_nonce():
    """The nonce line the parent put first on stdin, read byte-exactly (os.read: sys.stdin's buffer
    never sees it, so the program reads its own input from the next byte and the nonce is gone)."""
    data = b""
    while len(data) < _NONCE_HEX + 1:
        chunk = _read(0, _NONCE_HEX + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) != _NONCE_HEX + 1 or data[-1:] != b"\n":
        raise RuntimeError("check harness: no nonce line on stdin")
    return data[:-1]


def _reporter(nonce):
    """The one function that writes the nonce: a closure, so the nonce sits in no module global."""

    def report(kind, payload=""):
        data = b"\n" + nonce + b" " + kind.encode() + b" " + payload.encode("utf-8") + b"\n"
        while data:
            data = data[_write(2, data) :]

    return report


def _module_snapshot(names):
    """(name, module, attribute dict copy) of stdlib modules a check imports, taken before graded code."""
    taken = []
    for name in names:
        module = __import__(name)
        taken.append((name, module, dict(module.__dict__)))
    return taken


def _restorer(taken):
    def restore():
        # Undo what graded code did to the modules a check relies on (e.g. `math.fabs = lambda x: 0`).
        for name, module, attrs in taken:
            _modules[name] = module
            current = module.__dict__
            for key, value in attrs.items():
                if current.get(key) is not value:
                    current[key] = value

    return restore


def _untrace():
    # A trace function can jump over a check's lines (frame.f_lineno); none survives graded code.
    _settrace(None)
    _setprofile(None)


def _plain_returning(fn, restore):
    """`fn` as a check sees it: its return value must be plain, and comes back as a fresh copy (graded
    code keeps no reference to what the check compares)."""

    def candidate(*args, **kwargs):
        try:
            value = fn(*args, **kwargs)
        finally:
            _untrace()
            restore()
        return decode_plain(encode_plain(value))

    return candidate


def _graded_module(spec):
    module = _ModuleType(spec["name"])
    namespace = module.__dict__
    namespace["__builtins__"] = _builtins_module  # the graded code gets (and may spoil) the real ones
    namespace["__file__"] = _os.path.abspath("main.py")
    # The harness's own module leaves sys.modules: `import __main__` reaches the graded module only.
    _modules["__main__"] = module
    _modules[spec["name"]] = module
    return namespace


def _compiled(source, filename, mode="exec"):
    # dont_inherit: no __future__ flags from this file; optimize=0: assert statements always run.
    return compile(source, filename, mode, dont_inherit=True, optimize=0)


def _harness_main(spec):
    report = _reporter(_read_nonce())
    mode = spec["mode"]
    if mode == "script":
        # The program's stdout is the answer: it only has to end normally. SystemExit is the program
        # ending (sys.exit() / exit() at the end of a stdin solution), as in LiveCodeBench's runner.
        namespace = _graded_module(spec)
        try:  # noqa: SIM105 (contextlib is a module the graded code could patch; try/except is not)
            exec(_compiled(spec["code"], "<solution>"), namespace)
        except SystemExit:
            pass
        report("done")
        return  # a normal interpreter exit: buffered output is flushed, non-daemon threads joined
    if mode == "check":
        prompt_ns = {"__builtins__": dict(_SNAPSHOT), "__name__": spec["name"]}
        exec(_compiled(spec["prompt"], "<prompt>"), prompt_ns)  # the dataset's helpers, pristine
        restore = _restorer(_module_snapshot(spec["modules"]))
        namespace = _graded_module(spec)
        exec(_compiled(spec["code"], "<solution>"), namespace)
        _untrace()
        restore()
        entry = spec["entry_point"]
        candidate = _plain_returning(namespace.get(entry), restore)
        test_ns = dict(namespace)
        test_ns.update((k, v) for k, v in prompt_ns.items() if not k.startswith("__") and k != entry)
        test_ns.update({"__builtins__": dict(_SNAPSHOT), entry: candidate})
        exec(_compiled(spec["test"], "<test>"), test_ns)
        test_ns["check"](candidate)
        _untrace()
        report("done")
        _exit(0)  # nothing of the graded code (atexit hooks, threads) runs after the report
    if mode == "value":
        namespace = _graded_module(spec)
        exec(_compiled(spec["code"], "<solution>"), namespace)
        value = eval(_compiled(spec["expr"], "<call>", "eval"), namespace)
    elif mode == "call":
        args = [_json_loads(line) for line in spec["args"].split("\n")]  # parsed before graded code
        namespace = _graded_module(spec)
        exec(_compiled(spec["code"], "<solution>"), namespace)
        cls, name = namespace.get("Solution"), spec["func"]
        fn = getattr(cls(), name) if isinstance(cls, type) else namespace[name]
        value = fn(*args)
    else:
        raise ValueError(f"check harness: unknown mode {mode!r}")
    _untrace()
    report("value", repr(encode_plain(value)))
    _exit(0)
