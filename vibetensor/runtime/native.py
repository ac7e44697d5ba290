"""C extensions under the Python host paths, built on first use with the machine's C compiler.

A few paths run once per op or per tensor and are already at the floor of what Python can do
(slot stores, a dict lookup, a call): the kernel launch, the allocator, autograd's node making and
backward walk, the dispatcher's call. Each has a C twin in a `fast*.py` module that does the same
work over the same objects, with the Python kept as the specification and twin-tested against it.
This module builds them: the C source is compiled once into a shared object cached under
~/.cache/vibetensor/native (or $VIBETENSOR_NATIVE_CACHE), keyed by a hash of the source and the
Python version, and loaded from there after. Where there is no compiler or no Python headers, or
the extension's switch (an environment variable) is "0", `Extension()` is None and the Python runs.
"""
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading


def _cache_dir():
    root = os.environ.get("VIBETENSOR_NATIVE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vibetensor",
                                                                      "native")
    os.makedirs(root, exist_ok=True)
    return root


def _compiler():
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler (set CC)")
    return cc


def _python_include():
    scheme = sysconfig.get_default_scheme()
    if scheme == "posix_local":  # (Debian's scheme: its headers are under posix_prefix)
        scheme = "posix_prefix"
    return sysconfig.get_paths(scheme=scheme)["include"]


_OPT = "-O3"


def _library_flag(lib):
    """-l:libcuda.so.1 for a file name (a versioned .so, a .a), -lm for a plain library name."""
    return f"-l:{lib}" if re.search(r"\.so(\.\d+)*$", lib) or lib.endswith(".a") else f"-l{lib}"


def build(src, name, library_dirs=(), include_dirs=(), libraries=()):
    """The module compiled from C source `src` (its init function PyInit_<name>); raises where it
    cannot be built."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    flags = (_OPT, tuple(library_dirs), tuple(include_dirs), tuple(libraries))  # (a flag change rebuilds)
    key = hashlib.sha256(repr((src, flags, sys.version, sys.platform)).encode()).hexdigest()[:32]
    path = os.path.join(_cache_dir(), f"{name}-{key}{suffix}")
    if not os.path.exists(path):
        with tempfile.TemporaryDirectory() as tmp:
            c_file = os.path.join(tmp, name + ".c")
            with open(c_file, "w") as f:
                f.write(src)
            so = os.path.join(tmp, name + suffix)
            cmd = [_compiler(), c_file, _OPT, "-shared", "-fPIC", "-o", so, f"-I{_python_include()}"]
            cmd += [f"-I{d}" for d in include_dirs] + [f"-L{d}" for d in library_dirs]
            cmd += [_library_flag(lib) for lib in libraries]
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"building {name} failed:\n{done.stderr[-4000:]}")
            staged = f"{path}.{os.getpid()}.tmp"  # (another process may build the same one: rename is atomic)
            shutil.copyfile(so, staged)
            os.replace(staged, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Extension:
    """One C extension, built the first time it is asked for: `ext()` is the module, or None where
    it cannot be built or the environment variable `switch` is "0". `dirs()` gives build() its
    library_dirs, include_dirs and libraries (looked up only when building); `on_fail(error)` is
    told why a build failed."""

    def __init__(self, name, src, switch=None, dirs=None, on_fail=None):
        self.name, self.src, self.switch, self.dirs, self.on_fail = name, src, switch, dirs, on_fail
        self._lock = threading.Lock()
        self._tried = []  # [module or None] once tried

    def __call__(self):
        tried = self._tried
        if not tried:
            with self._lock:
                if not tried:
                    tried.append(self._load())
        return tried[0]

    def _load(self):
        if self.switch is not None and os.environ.get(self.switch, "1") == "0":
            return None
        try:
            return build(self.src, self.name, **(self.dirs() if self.dirs is not None else {}))
        except Exception as e:  # noqa: BLE001  (no compiler, no headers: the Python runs)
            if self.on_fail is not None:
                self.on_fail(e)
            return None
