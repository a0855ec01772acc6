"""YAML loading limits hold whichever PyYAML/libyaml build is installed."""

from runner.base.source import parse_yaml


def test_deep_flow_nesting_reports_our_limit_not_libyamls():
    # libyaml (bundled with PyYAML >= 6.0.2) stops deep flow nesting at 1,000 levels in its
    # scanner, before our builder sees the events; the message must still be ours.
    docs, problems = parse_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n", "a.yaml", max_depth=100)
    assert docs == []
    assert [(p.message, p.line, p.col) for p in problems] == [
        ("nested too deeply (more than 100 levels)", 1, 103)
    ]


def test_deep_block_nesting_reports_our_limit():
    text = "".join("  " * i + f"k{i}:\n" for i in range(1500)) + "  " * 1500 + "x\n"
    _, problems = parse_yaml(text, "a.yaml", max_depth=100)
    assert [(p.message, p.line) for p in problems] == [
        ("nested too deeply (more than 100 levels)", 101)
    ]


def test_nesting_within_our_limit_parses():
    docs, problems = parse_yaml("a: " + "[" * 50 + "]" * 50 + "\n", "a.yaml")
    assert problems == []
    value = docs[0].value["a"]
    for _ in range(49):
        (value,) = value
    assert value == []
