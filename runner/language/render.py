"""Typed rendering of data (manifests, values, outputs): templates become values, not YAML text.

A manifest written by pasting request values into YAML text could be rewritten by a request
(`name: "x\\nkind: Secret"`). Here templates are rendered inside the parsed data instead, and
the result is dumped afterwards, so a request value is always one scalar (or the list or
mapping it already was): it can never add keys or documents. A string that is exactly one
`${{ ref }}` takes the referenced value with its type (`3` stays an integer); a string with
other text around its templates, and every mapping key, renders as text; `$${{` is a literal
`${{` (runner.language.interpolation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.language.interpolation import (
    TemplateError,
    has_template,
    lookup,
    render,
    single_reference,
)

__all__ = ["RenderError", "plain", "render_data"]

PathKey = tuple[str | int, ...]


class RenderError(TemplateError):
    """A template in data that cannot be rendered, with where it is in the data."""

    def __init__(self, error: TemplateError, path: PathKey) -> None:
        super().__init__(error.message, error.text, error.offset)
        self.path = path


def render_data(value: object, context: Mapping[str, object]) -> Any:
    """A copy of value (mappings, lists, scalars) with every template in it rendered.

    Raises RenderError (a TemplateError with the path of the string) for a malformed
    template, a missing name, or two keys of a mapping that render to the same text.
    """
    return _render(value, context, ())


def _render(value: object, context: Mapping[str, object], path: PathKey) -> Any:
    if isinstance(value, str):
        return _render_string(value, context, path)
    if isinstance(value, Mapping):
        out: dict[object, Any] = {}
        for key, item in value.items():
            # Paths name the keys as written, so that a caller can locate them in the file.
            at = (*path, str(key))
            name = _render_string(key, context, at, as_key=True) if isinstance(key, str) else key
            if name in out:
                message = f"the key {key!r} renders to a key this mapping already has"
                raise RenderError(TemplateError(message, str(key)), at)
            out[name] = _render(item, context, at)
        return out
    if isinstance(value, (list, tuple)):
        return [_render(item, context, (*path, index)) for index, item in enumerate(value)]
    return value


def _render_string(
    text: str, context: Mapping[str, object], path: PathKey, *, as_key: bool = False
) -> Any:
    if not has_template(text):
        return text
    try:
        ref = None if as_key else single_reference(text)
        if ref is None:
            return render(text, context)
        return plain(lookup(text, ref, context))
    except TemplateError as exc:
        raise RenderError(exc, path) from None


def plain(value: object) -> Any:
    """A deep copy of value as plain dicts and lists, which the YAML and JSON dumpers take."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
