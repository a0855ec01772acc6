"""How a step's state (key -> file bytes) is laid out in ConfigMaps and Secrets.

Pure functions, no I/O: the ConfigMap/Secret store (runner/state/configmap_secret.py) names the
objects, labels them, writes them with their resourceVersions and hands what it read back to
`decode`. What differs between the two kinds of object is an `ObjectKind`
(runner/state/objectkind.py), never a comparison of names.

Three formats, recorded in the object's `FORMAT_ANNOTATION`:

* ``plain``: every value is UTF-8 text and the whole state fits one object. A ConfigMap keeps the
  text as is in ``.data`` (so ``kubectl get configmap X -o jsonpath={.data.tfstate}`` shows the
  Terraform state, as in the Kratix tutorial); a Secret keeps it base64-encoded in ``.data`` (so
  ``... | base64 -d`` works).
* ``gzip``: each value gzip-compressed (one gzip member, mtime 0, level 6), when that fits one
  object. ConfigMap ``.binaryData`` / Secret ``.data``, base64 as the API wants it.
* ``chunked``: bigger still. One archive of all files is gzip-compressed and split into pieces of
  `CHUNK_BYTES`; each piece goes into its own chunk object under the key ``chunk`` (ConfigMap
  ``.binaryData``, Secret ``.data``), and the main object's ``.data`` holds only a JSON
  ``manifest``: chunk count, compressed size, the compressed archive's sha256 and a
  ``generation``: 16 hex digits, random per save, that the chunk objects' names carry. A save
  writes new chunk objects under a new generation and never rewrites one, so a reader of the old
  manifest finds the old chunks or none (and reads again), never a mix unnoticed. (Earlier
  runners took the generation from the sha256's first 16 digits; such manifests still read.)

Memory: states reach 30+ MiB in a 256 MiB pod shared with terraform, so neither direction ever
holds more than one chunk of encoded data. `encode_stream` compresses slices of the input and
hands out each chunk's base64 as soon as it is full; the manifest, which needs the size and
checksum of everything, comes last, as the store writes it last. `ChunkedDecoder` takes one
chunk at a time and checks the checksum once the last is in, before any file is handed out.

The parts, one thing each:
  keys.py            which keys may name a file (the API's rule for data keys)
  formats.py         the format names; plain and gzip, the formats of one object
  chunk_manifest.py  a chunked state's manifest: written last, checked strictly when read
  archive.py         the archive inside the compressed stream: header line, files back to back
  chunks.py          the compressed stream cut into chunks and read back one at a time
  encoding.py        the format decision and the payloads; decoding.py: reading any format back
  errors.py          CorruptState (read again) and UnsupportedFormat (never readable here)
This package's names below are what the store and the tests use.
"""

from __future__ import annotations

from runner.state.base import digest
from runner.state.codec.chunk_manifest import MANIFEST_KEY, manifest, new_generation
from runner.state.codec.chunks import CHUNK_BYTES, CHUNK_KEY, MAX_CHUNKS, ChunkedDecoder
from runner.state.codec.decoding import decode, decode_digest, decode_with_digest
from runner.state.codec.encoding import MAX_OBJECT_BYTES, Encoding, Payload, encode, encode_stream
from runner.state.codec.errors import CorruptState, UnsupportedFormat
from runner.state.codec.formats import CHUNKED, FORMAT_ANNOTATION, FORMATS, GZIP, PLAIN
from runner.state.codec.keys import key_problem, valid_key

__all__ = [
    "CHUNKED",
    "CHUNK_BYTES",
    "CHUNK_KEY",
    "FORMATS",
    "FORMAT_ANNOTATION",
    "GZIP",
    "MANIFEST_KEY",
    "MAX_CHUNKS",
    "MAX_OBJECT_BYTES",
    "PLAIN",
    "ChunkedDecoder",
    "CorruptState",
    "Encoding",
    "Payload",
    "UnsupportedFormat",
    "decode",
    "decode_digest",
    "decode_with_digest",
    "digest",
    "encode",
    "encode_stream",
    "key_problem",
    "manifest",
    "new_generation",
    "valid_key",
]
