"""Kubernetes' string-only places are written as text (runner.language.documents.as_kubernetes_text)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from runner.language.documents import as_kubernetes_text, build
from runner.stepfile.template_places import place_of


def test_a_pod_s_env_values_and_a_secret_s_data_become_text() -> None:
    pod: dict[str, Any] = {
        "kind": "Pod",
        "metadata": {"annotations": {"replicas": 3, "ok": "x"}},
        "spec": {
            "containers": [
                {"env": [{"name": "A", "value": 1.5}, {"name": "B", "valueFrom": {"x": 1}}]},
                "not a container",
            ],
            "initContainers": None,
        },
    }
    as_kubernetes_text(pod)
    assert pod["metadata"]["annotations"] == {"replicas": "3", "ok": "x"}
    assert pod["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1.5"},
        {"name": "B", "valueFrom": {"x": 1}},  # only `value`
    ]
    secret: dict[str, Any] = {"kind": "Secret", "data": {"a": None, "b": [1, "x"], "c": {"k": 1}}}
    as_kubernetes_text(secret)
    assert secret["data"] == {"a": "", "b": '[1,"x"]', "c": '{"k":1}'}


def test_other_shapes_are_left_alone() -> None:
    odd: dict[str, Any] = {"kind": "ConfigMap", "data": [1], "metadata": "x", "spec": []}
    as_kubernetes_text(odd)
    assert odd == {"kind": "ConfigMap", "data": [1], "metadata": "x", "spec": []}


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()


@given(st.dictionaries(st.text(min_size=1, max_size=5), scalars, max_size=5))
def test_every_configmap_data_value_is_text_after_build(data: dict[str, Any]) -> None:
    [built] = build(
        {"values": {"d": data}}, documents=[{"kind": "ConfigMap", "data": "${{ values.d }}"}]
    )
    assert set(built["data"]) == set(data)
    assert all(isinstance(value, str) for value in built["data"].values())
    assert all(built["data"][k] == v for k, v in data.items() if isinstance(v, str))


def test_nested_status_strings_are_templates_typed_as_status_values() -> None:
    for path in (("spec", "status", "x"), ("spec", "status", "x", "a", 0, "b")):
        place = place_of(path)
        assert place is not None and place.shown == "status values" and place.typed
