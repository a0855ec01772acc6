"""The documents of a step's `manifests:` entries, and where and how they are written.

An entry gives its documents inline (`document:` / `documents:`) or as a base file
(`from:`) changed by `set:` paths. Inline documents are rendered as data (runner.language.render);
a base file is taken as it is, without rendering `${{ }}` in it (a base may carry text
such as a CI workflow with its own `${{ }}`), and only `set:` values are rendered. The
documents are written as YAML that Kratix and the tools applying them read back as the same
values, under the output folder and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from runner.base.errors import InvalidError, Problem
from runner.base.source import format_path, stream_yaml
from runner.base.value_types import kind_of
from runner.language.interpolation import as_text
from runner.language.query import QueryError
from runner.language.render import RenderError, plain, render_data
from runner.language.setpath import SetPathError, parse_set_path, set_path
from runner.platform import kratix_yaml
from runner.platform.masking import Masker

__all__ = [
    "MAX_BASE_BYTES",
    "BaseTooLarge",
    "ManifestError",
    "as_kubernetes_text",
    "base_documents",
    "build",
    "copied_documents",
    "dump",
    "load_base",
    "output_path",
    "secret_in",
]

PathKey = tuple[str | int, ...]


class ManifestError(ValueError):
    """A manifest entry that cannot be built or written.

    ``path`` is where in the entry the problem is (("set", ".spec.replicas"), ("documents", 0,
    "metadata", "name"), ("path",)); ``offset`` is an offset into that string when known.
    """

    def __init__(self, message: str, path: PathKey, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.offset = offset

    def __str__(self) -> str:
        return self.message


def load_base(path: Path, display: str | None = None) -> list[Any]:
    """The documents of a base file; unreadable or malformed YAML raises a located InvalidError.

    Plain scalars resolve as go-yaml reads them (`yes` is true), because that is how the
    tools that apply Kratix's output (kubectl, Flux, Argo CD: sigs.k8s.io/yaml) read the file
    the base was copied from. Empty documents (a trailing `---`) are dropped, as kubectl does.
    A file larger than MAX_BASE_BYTES is refused (BaseTooLarge).
    """
    name = display or str(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InvalidError(Problem(f"cannot read file: {exc.strerror or exc}", name)) from None
    with handle:
        return list(base_documents(handle, name))


def build(
    context: Mapping[str, object],
    *,
    documents: Sequence[object] | None = None,
    base: Sequence[object] | None = None,
    sets: Iterable[tuple[str, object]] = (),
) -> list[dict[str, Any]]:
    """The documents of one entry (model.Manifest): inline `documents`, or `base` + `sets`.

    `base` is what load_base read from the entry's `from:`. Set values are rendered typed and
    applied in order to every document of the base, as yq applies an assignment to every
    document of a file. Raises ManifestError.
    """
    if (documents is None) == (base is None):
        raise ManifestError("a manifest needs exactly one of document, documents and from", ())
    sets = tuple(sets)
    if sets and base is None:
        raise ManifestError("set needs a base document (from)", ("set",))
    if documents is not None:
        built = [_render(item, context, ("documents", i)) for i, item in enumerate(documents)]
    else:
        built = [plain(item) for item in base or ()]
    for index, item in enumerate(built):
        if not isinstance(item, dict):
            where: PathKey = ("documents", index) if documents is not None else ("from",)
            raise ManifestError(
                f"document {index + 1} is {kind_of(item)}, not a mapping (a Kubernetes object)",
                where,
            )
    for text, value in sets:
        _apply(built, text, _render(value, context, ("set", text)))
    for item in built:
        as_kubernetes_text(item)
    return built


# Where Kubernetes takes only strings (map[string]string, EnvVar.value): a typed `${{ }}` that
# gives 5433 or true there would make the API server refuse the whole object.
_POD_SPECS: tuple[tuple[str, ...], ...] = (
    ("spec",),  # a Pod
    ("spec", "template", "spec"),  # a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job
    ("spec", "jobTemplate", "spec", "template", "spec"),  # a CronJob
)
_CONTAINERS = ("containers", "initContainers")
# The object's metadata, and its pod template's (labels written there go on every pod).
_METADATA: tuple[tuple[str, ...], ...] = (
    ("metadata",),
    ("spec", "template", "metadata"),
    ("spec", "jobTemplate", "spec", "template", "metadata"),
)
_TEXT_MAPS = tuple((*m, field) for m in _METADATA for field in ("labels", "annotations"))
_TEXT_DATA_KINDS = ("ConfigMap", "Secret")


def as_kubernetes_text(document: dict[str, Any]) -> None:
    """Turn the values of Kubernetes' string-only places into text, in place.

    The places: `data` and `stringData` of a ConfigMap or Secret, `metadata.labels` and
    `metadata.annotations` values (of a pod template's metadata too), and a container's
    `env[].value`. A number or boolean
    becomes its text (`5433` → "5433", true → "true"), null "", a list or mapping compact
    JSON: what a template gives inside text.
    """
    maps = [_at(document, path) for path in _TEXT_MAPS]
    if document.get("kind") in _TEXT_DATA_KINDS:
        maps += [document.get("data"), document.get("stringData")]
    for mapping in maps:
        if isinstance(mapping, dict):
            for key, value in mapping.items():
                if not isinstance(value, str):
                    mapping[key] = as_text(value)
    for pod in _POD_SPECS:
        spec = _at(document, pod)
        for group in _CONTAINERS if isinstance(spec, dict) else ():
            for container in _items(spec.get(group)):
                for variable in _items(container.get("env")):
                    if "value" in variable and not isinstance(variable["value"], str):
                        variable["value"] = as_text(variable["value"])


def _at(document: object, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _items(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _render(value: object, context: Mapping[str, object], at: PathKey) -> Any:
    try:
        return render_data(value, context)
    except RenderError as exc:
        raise ManifestError(exc.message, (*at, *exc.path), exc.offset) from None


def _apply(built: list[dict[str, Any]], text: str, value: object) -> None:
    """Apply one `set:` path to every document; copies keep documents apart."""
    try:
        segments = parse_set_path(text)
    except QueryError as exc:
        raise ManifestError(
            f"set path {text!r}: {exc.message}", ("set", text), exc.offset
        ) from None
    for index, item in enumerate(built):
        try:
            set_path(item, segments, plain(value))
        except SetPathError as exc:
            which = f" (in document {index + 1})" if len(built) > 1 else ""
            raise ManifestError(exc.message + which, ("set", text)) from None


def dump(documents: Sequence[object]) -> str:
    """Multi-document YAML that Kratix (go-yaml rules) reads back as the same values."""
    return "---\n".join(kratix_yaml.dump(item) for item in documents)


def output_path(output_dir: Path, relative: str) -> Path:
    """Where a manifest's `path` is written: inside output_dir, or a ManifestError saying why not.

    Absolute paths, `..` and symbolic links that lead out of the folder are refused.
    """
    where: PathKey = ("path",)
    if not relative or "\0" in relative:
        raise ManifestError("a manifest path must be a non-empty file name", where)
    pure = PurePosixPath(relative)
    if pure.is_absolute():
        raise ManifestError(
            f"manifest path {relative!r} is absolute; give it relative to the output folder", where
        )
    if ".." in pure.parts:
        raise ManifestError(
            f"manifest path {relative!r} contains '..'; it must stay inside the output folder",
            where,
        )
    root = output_dir.resolve()
    target = (root / pure).resolve()  # follows the symbolic links that exist
    if target == root or relative.endswith("/") or target.is_dir():
        raise ManifestError(f"manifest path {relative!r} names a folder, not a file", where)
    if not target.is_relative_to(root):
        raise ManifestError(
            f"manifest path {relative!r} leads outside the output folder through a symbolic link",
            where,
        )
    return target


def secret_in(data: object, masker: Masker) -> str | None:
    """The path (spec.env[0].value) of the first key or value holding a secret, or None.

    A secret counts in every form the masker masks (whole value, a line, base64, URL).
    """
    return _secret_path(data, masker, ()) if masker else None


def _secret_path(value: object, masker: Masker, path: PathKey) -> str | None:
    if isinstance(value, dict):
        for key, item in value.items():
            at = (*path, str(key))
            if _holds_secret(key, masker):
                return format_path(at)
            if (found := _secret_path(item, masker, at)) is not None:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _secret_path(item, masker, (*path, index))) is not None:
                return found
        return None
    return format_path(path) if _holds_secret(value, masker) else None


def _holds_secret(value: object, masker: Masker) -> bool:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return False
    return masker.finds(str(value))  # a PIN read from a file is a number


# A base file is read from the image, not from a ConfigMap: marketplace operator bundles are
# 1.2-1.6 MB. It is streamed one document at a time (copied_documents), `set:` or not.
MAX_BASE_BYTES = 32 << 20


class BaseTooLarge(ValueError):
    """A base file larger than MAX_BASE_BYTES: `size` is what it is."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(
            f"base file {name} is {size / (1 << 20):.1f} MiB ({size} bytes), more than the "
            f"{MAX_BASE_BYTES >> 20} MiB a base file may be"
        )
        self.size = size


def base_documents(stream: BinaryIO, name: str) -> Iterator[Any]:
    """The documents of a base file open in `stream`, one at a time (a generator: memory holds
    one document, not the file); empty documents dropped. Raises BaseTooLarge before reading
    a file over MAX_BASE_BYTES, InvalidError (located in the file) for malformed YAML or a file
    without documents."""
    size = os.fstat(stream.fileno()).st_size
    if size > MAX_BASE_BYTES:
        raise BaseTooLarge(name, size)
    count = 0
    for value in stream_yaml(stream, name, scalars=kratix_yaml.GO_YAML):
        if value is not None:
            count += 1
            yield value
    if not count:
        raise InvalidError(Problem("the base file has no documents", name, 1, 1))


def copied_documents(
    values: Iterable[Any],
    masker: Masker,
    context: Mapping[str, object] | None = None,
    sets: Iterable[tuple[str, object]] = (),
    where: str = "from",
) -> Iterator[str]:
    """Each document of a base file (or a `file:`) checked and written as Kratix reads it: a
    mapping, the `set:` paths applied in order, Kubernetes' string-only places as text, no
    secret's value. Yields the YAML text of each, `---` between them (dump's output, one
    document at a time: memory holds one). Raises ManifestError located at `where` (or at the
    set path). Set values are rendered once, from `context`, as build renders them."""
    sets = tuple(sets)
    rendered = [
        (text, _parsed(text), plain(_render(value, context or {}, ("set", text))))
        for text, value in sets
    ]
    values = iter(values)
    value, index = next(values, _END), 0
    while value is not _END:
        following = next(values, _END)
        if not isinstance(value, dict):
            raise ManifestError(
                f"document {index + 1} is {kind_of(value)}, not a mapping (a Kubernetes object)",
                (where,),
            )
        for text, segments, item in rendered:
            try:
                set_path(value, segments, plain(item))
            except SetPathError as exc:
                several = index or following is not _END
                which = f" (in document {index + 1})" if several else ""
                raise ManifestError(exc.message + which, ("set", text)) from None
        as_kubernetes_text(value)
        found = secret_in(value, masker)
        if found is not None:
            raise ManifestError(
                f"document {index + 1}: {found} would hold a secret's value; nothing was written",
                (where,),
            )
        yield ("---\n" if index else "") + kratix_yaml.dump(value)
        value, index = following, index + 1


_END = object()


def _parsed(text: str) -> Any:
    try:
        return parse_set_path(text)
    except QueryError as exc:
        raise ManifestError(
            f"set path {text!r}: {exc.message}", ("set", text), exc.offset
        ) from None
