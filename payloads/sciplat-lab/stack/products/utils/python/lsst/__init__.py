"""Namespace of the stand-in stack products (pkgutil style, like the stack)."""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
