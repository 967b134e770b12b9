"""The compiled parts of udpt (docs/DESIGN.md §11); everything else is in pyproject.toml.

Both extensions are optional: without a C compiler or the Python headers the
build skips them, the install still succeeds, and udpt runs its pure Python.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        Extension(
            "udpt._core",
            sources=[
                "udpt/_core.c",
                "udpt/_batch.c",
                "udpt/_codec.c",
                "udpt/_swarm.c",
                "udpt/_lane.c",
                "udpt/_recut.c",
                "udpt/_hashindex.c",
                "udpt/_torrents.c",
                "udpt/_hashlist.c",
                "udpt/_keyhash.c",
            ],
            depends=[
                "udpt/_batch.h",
                "udpt/_codec.h",
                "udpt/_hashindex.h",
                "udpt/_hashlist.h",
                "udpt/_keyhash.h",
                "udpt/_lane.h",
                "udpt/_recut.h",
                "udpt/_swarm.h",
                "udpt/_torrents.h",
            ],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension("udpt._sockets", ["udpt/_sockets.c"], extra_compile_args=FLAGS, optional=True),
    ]
)
