"""runner test compares a produced YAML file holding a secret as data: masking its text must not
turn it into something that no longer parses (`password: ***` reads as a YAML alias), or the
case's `ignore:` paths would stop applying and the file would be compared as text."""

from __future__ import annotations

from runner.cases.compare import compare_files, snapshot
from runner.cases.ignore import parse_path
from runner.platform.masking import Masker

SECRET = "Xq9-generated-password-123"
PRODUCED = f"""apiVersion: v1
data:
  password: {SECRET}
kind: Secret
metadata:
  creationTimestamp: null
  name: orders-secret
""".encode()
EXPECTED = b"""apiVersion: v1
kind: Secret
data: {password: c3VwZXJzZWNyZXQ=}
metadata: {name: orders-secret}
"""


def test_a_masked_secret_keeps_a_yaml_file_data_so_ignore_applies(tmp_path):
    masker = Masker([SECRET])
    (tmp_path / "secret.yaml").write_bytes(PRODUCED)
    produced = snapshot(tmp_path, masker)["secret.yaml"]
    assert SECRET.encode() not in produced
    paths = tuple(parse_path(p) for p in (".data.password", ".metadata.creationTimestamp"))
    assert compare_files("output/secret.yaml", EXPECTED, produced, paths, masker) is None


def test_a_masked_secret_still_differs_where_it_is_not_ignored(tmp_path):
    masker = Masker([SECRET])
    (tmp_path / "secret.yaml").write_bytes(PRODUCED)
    produced = snapshot(tmp_path, masker)["secret.yaml"]
    diff = compare_files("output/secret.yaml", EXPECTED, produced, (), masker)
    assert diff is not None
    assert SECRET not in "\n".join(diff)
    assert any("password: '***'" in line for line in diff)
