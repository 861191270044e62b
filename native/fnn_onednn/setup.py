"""Builds `fnn_onednn/_kernels*.so`: the XLA FFI handlers in src/, linked against oneDNN.

Headers: oneDNN's from the `onednn-devel-cpu-gomp` build requirement; XLA's FFI
headers from the jaxlib of the environment being installed into (so the handlers
are compiled against the FFI version that will call them), else from any importable
jaxlib. The library finds `libdnnl.so.3` at run time through its rpath (the
`lib/` folder of that environment, where the `onednn-cpu-gomp` wheel puts it) or
because `fnn_onednn` loads it first.
"""
import importlib.metadata
import importlib.util
import os
import sysconfig

from setuptools import Extension, setup


def _dist_dir(dist: str, suffix: str) -> str:
    """The folder holding the file of `dist` whose path ends in `suffix`."""
    for f in importlib.metadata.distribution(dist).files or ():
        if str(f).replace(os.sep, "/").endswith(suffix):
            path = os.path.normpath(str(f.locate()))
            return path[: -len(suffix)].rstrip("/") or "/"
    raise RuntimeError(f"fnn_onednn: {dist} has no file {suffix}")


def _jaxlib_include() -> str:
    target = os.path.join(sysconfig.get_paths()["purelib"], "jaxlib", "include")
    if os.path.isfile(os.path.join(target, "xla", "ffi", "api", "ffi.h")):
        return target
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fnn_onednn: install jax and jaxlib first (for the XLA FFI headers)")
    return os.path.join(spec.submodule_search_locations[0], "include")


kernels = Extension(
    "fnn_onednn._kernels",
    sources=["src/conv.cc"],
    depends=["src/parallel.h"],
    include_dirs=[_dist_dir("onednn-devel-cpu-gomp", "oneapi/dnnl/dnnl.hpp"),
                  _jaxlib_include()],
    library_dirs=[_dist_dir("onednn-cpu-gomp", "libdnnl.so.3")],
    libraries=["dnnl", "gomp"],   # gomp: omp_set_num_threads
    language="c++",
    extra_compile_args=["-std=c++17", "-O2", "-fvisibility=hidden", "-Wno-return-type",
                        "-g0"],
    # site-packages/fnn_onednn -> <prefix>/lib, where the oneDNN wheel installs libdnnl
    extra_link_args=["-Wl,-rpath,$ORIGIN/../../.."],
)

setup(ext_modules=[kernels])
