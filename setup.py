"""The compiled parts of udpt, each optional: without a compiler the pure Python runs."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("udpt._receive", ["udpt/_receive.c"], optional=True),
    ]
)
