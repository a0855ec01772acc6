"""Which values and outputs are sensitive: marked so, or built from one that is."""

from __future__ import annotations

from runner.stepfile.sensitivity import ANY, Taint, marks, sensitive_outputs, step_taint


def test_an_output_marked_sensitive_is_its_own_source() -> None:
    taint = step_taint({"outputs": {"tok": {"file": "t.txt", "sensitive": True}}})
    assert taint.local == {"outputs.tok": "outputs.tok"}
    assert taint.of(("outputs", "tok")) == ("outputs.tok", frozenset())


def test_sensitivity_flows_through_outputs_in_order() -> None:
    taint = step_taint(
        {
            "outputs": {
                "tok": {"file": "t.txt", "sensitive": True},
                "quoted": {"jmespath": "to_yaml(outputs.tok)"},
                "again": {"jmespath": "upper(outputs.quoted)"},
                "plain": {"file": "t.txt"},
            }
        }
    )
    assert taint.local == {
        "outputs.tok": "outputs.tok",
        "outputs.quoted": "outputs.tok",
        "outputs.again": "outputs.tok",
    }


def test_a_whole_group_read_is_as_sensitive_as_its_most_sensitive_member() -> None:
    taint = step_taint(
        {
            "outputs": {
                "tok": {"file": "t.txt", "sensitive": True},
                "all": {"jmespath": "to_yaml(outputs)"},
            }
        }
    )
    assert "outputs.all" in taint.local


def test_values_carry_the_step_outputs_they_read_transitively() -> None:
    taint = step_taint(
        {
            "values": {
                "a": {"jmespath": "steps.db.outputs.password"},
                "b": {"jmespath": "join('-', [values.a, inputs.name])"},
                "c": {"from": "inputs.size", "map": {"small": 1}},
                "d": {"jmespath": "keys(steps.cache.outputs)"},
            }
        }
    )
    assert taint.local == {}
    assert taint.via["values.b"] == frozenset({("db", "password")})
    assert "values.c" not in taint.via
    assert taint.via["values.d"] == frozenset({("cache", ANY)})
    assert taint.sensitive({"db": ["password"]}) == {"values.a", "values.b"}
    assert taint.sensitive({"db": ["user"]}) == set()
    assert taint.sensitive({"cache": ["x"]}) == {"values.d"}


def test_an_unparsable_expression_taints_nothing() -> None:
    assert step_taint({"values": {"a": {"jmespath": "steps.("}}}) == Taint()


def test_marks_reads_of_any_step_or_output() -> None:
    found = {"db": frozenset({"password"}), "web": frozenset()}
    assert marks(found, ("db", "password"))
    assert marks(found, ("db", ANY))
    assert marks(found, (ANY, ANY))
    assert not marks(found, ("web", ANY))
    assert not marks(found, ("db", "user"))


def test_sensitive_outputs_follow_chains_across_steps_in_any_file_order() -> None:
    taints = {
        "report": step_taint({"outputs": {"z": {"jmespath": "steps.relay.outputs.y"}}}),
        "relay": step_taint({"outputs": {"y": {"jmespath": "steps.mint.outputs.x"}}}),
        "mint": step_taint({"outputs": {"x": {"file": "x", "sensitive": True}}}),
    }
    declared = {"report": frozenset({"z"}), "relay": frozenset({"y"}), "mint": frozenset({"x"})}
    assert sensitive_outputs(taints, declared) == {
        "report": frozenset({"z"}),
        "relay": frozenset({"y"}),
        "mint": frozenset({"x"}),
    }
