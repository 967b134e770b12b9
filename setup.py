"""The compiled parts of udpt, each optional: without a compiler the pure Python runs."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("udpt._sockets", ["udpt/_sockets.c"], optional=True),
    ]
)
