"""The compiled core, udpt._core (docs/DESIGN.md §10); everything else is in pyproject.toml.

The extension is optional: without a C compiler or the Python headers the build
skips it, the install still succeeds, and udpt runs its pure Python codecs.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "udpt._core",
            sources=["udpt/_core.c", "udpt/_codec.c"],
            depends=["udpt/_codec.h"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
