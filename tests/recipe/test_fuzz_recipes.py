"""No traceback, ever: ``adacli validate`` on mutated and random recipes exits 0 or 2, says what is wrong
in one line, and never hangs (hypothesis; about 10 s on two cores)."""

from __future__ import annotations

import copy
import json
import re
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from adacli.cli import app
from adacli.errors import InputError
from adacli.recipe import load_recipe

VALID: dict[str, Any] = {
    "name": "fuzz",
    "model": {"name": "test_resnet", "kwargs": {}},
    "dataset": {"name": "digits", "image_size": 8, "val_fraction": 0.1},
    "budget": {"steps": 2, "batch_size": 8, "eval_every": 1},
    "seeds": [0, 1],
    "device": "cpu",
    "precision": "fp32",
    "schedule": {"name": "cosine", "warmup_steps": 1},
    "target": {"metric": "train_loss", "value": 1.0},
    "gate": {"accuracy_drop": 1.0},
    "sweep": {"metric": "val_accuracy", "equal_budget": False},
    "optimizers": [
        {"name": "adabelief", "lr": {"log_range": [1e-4, 1e-2], "n": 2}, "betas": [0.9, 0.999]},
        {"name": "sgd", "lr": [0.1], "momentum": 0.9, "label": "sgd-m"},
    ],
}
HANG_SECONDS = 20  # a rejected recipe takes milliseconds and a valid one well under a second

FUZZ = settings(
    max_examples=200,
    deadline=None,  # timing is the alarm's job: machines under load are slow, not hung
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: CI stays repeatable
)


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key / item path of a nested dict-list value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


PATHS = list(_paths(VALID))
KEYS = sorted({p[-1] for p in PATHS if isinstance(p[-1], str)})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "..", "../x", "nan", "inf", "1e309", "0x10", "cuda:99", "ℵ", "😀", "\x00"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _set(doc: Any, path: tuple, value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


def _delete(doc: Any, path: tuple) -> None:
    for p in path[:-1]:
        doc = doc[p]
    del doc[path[-1]]


@st.composite
def mutated_recipes(draw: st.DrawFn) -> Any:
    """The valid recipe with 1-3 mutations: a value replaced, a key deleted or added (a near-miss of a
    known key or a random one), a value wrapped in a list, a list shortened."""
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace", "replace", "delete", "add", "wrap", "shorten"]))
        try:
            parent = doc
            for p in path[:-1]:
                parent = parent[p]
            if kind == "replace":
                _set(doc, path, draw(values))
            elif kind == "delete":
                _delete(doc, path)
            elif kind == "add" and isinstance(parent, dict):
                key = draw(
                    st.sampled_from(KEYS).map(lambda k: k[:-1] + "s" if len(k) > 2 else k)
                    | st.text(max_size=10)
                )
                parent[key] = draw(values)
            elif kind == "wrap":
                _set(doc, path, [parent[path[-1]]])
            elif kind == "shorten" and isinstance(parent[path[-1]], list):
                _set(doc, path, parent[path[-1]][:1])
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the path: draw the next
    return doc


def _validate(text: str) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with _alarm(HANG_SECONDS):
            return CliRunner().invoke(app, ["validate", str(path)])


@contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    def hung(signum: int, frame: Any) -> None:
        raise TimeoutError(f"adacli validate ran for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _assert_clean(result: Any, text: str) -> None:
    """Exit 0 or 2; on 2 exactly one line, 'error: ...'; no traceback either way."""
    shown = f"\n--- recipe ---\n{text}\n--- output ---\n{result.output}"
    assert not isinstance(result.exception, TimeoutError), "hung" + shown
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"raised {result.exception!r}{shown}"
    )
    assert "Traceback" not in result.output, shown
    assert result.exit_code in (0, 2), shown
    if result.exit_code == 2:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), shown


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def test_the_valid_recipe_is_valid():
    result = _validate(_dump(VALID))
    assert result.exit_code == 0, result.output


@FUZZ
@given(mutated_recipes())
def test_mutated_recipes_exit_0_or_2_in_one_line(doc):
    text = _dump(doc)
    result = _validate(text)
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how many reach preflight (exit 0)
    _assert_clean(result, text)


@settings(FUZZ, max_examples=150)
@given(st.text(max_size=300))
def test_random_text_exits_2_in_one_line(text):
    _assert_clean(_validate(text), text)


@settings(FUZZ, max_examples=100)
@given(values)
def test_random_yaml_values_exit_2_in_one_line(value):
    text = _dump(value)
    _assert_clean(_validate(text), text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"a{i}: &a{i} [{', '.join(['*a' if i == 1 else f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
            ),
            "once YAML aliases are expanded",
        ),
        (
            "".join(f"k{i}: &x{i} 1\n" for i in range(101))
            + "l: ["
            + ", ".join(f"*x{i}" for i in range(101))
            + "]\n",
            "more than 100 YAML aliases",
        ),
        ("name: " + "[" * 5000 + "]" * 5000 + "\n", "nest"),
        ("name: x\nmodel: " + "{a: " * 100 + "1" + "}" * 100 + "\n", "nested more than 40 levels deep"),
        ("x: [" + ", ".join(["1"] * 6000) + "]\n", "more than 5000 values"),
        ("# " + "x" * 70_000 + "\n", "a recipe is at most 64 KiB"),
    ],
    ids=["alias-bomb", "many-aliases", "deep-flow", "deep-maps", "wide", "huge-file"],
)
def test_hostile_yaml_is_rejected_quickly_in_one_line(tmp_path, text, words):
    if words == "once YAML aliases are expanded":
        assert len(text) < 1024  # the case: an alias bomb under 1 KB
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    # DESIGN's bound: a malformed recipe is rejected in < 2 s (it takes milliseconds: a 100x margin for
    # a loaded machine); the loader alone, so that no first import of torch lands on this clock
    with _alarm(2), pytest.raises(InputError, match=re.escape(words)):
        load_recipe(path)
    result = _validate(text)
    _assert_clean(result, text[:300])
    assert result.exit_code == 2 and words in result.output, result.output


def test_misspelt_required_key_is_named_with_the_closest_key():
    doc = {k: v for k, v in VALID.items() if k != "optimizers"} | {"optimisers": ["adam"]}
    result = _validate(_dump(doc))
    _assert_clean(result, _dump(doc))
    assert "optimisers: unknown key 'optimisers' (did you mean 'optimizers'?)" in result.output


@pytest.mark.parametrize(
    ("seeds", "words"),
    [
        ([], "a list of 1 to 1000 distinct integers"),
        ([1, 1], "seeds must be distinct"),
        (10**9, "a count (1..1000)"),
    ],
)
def test_seeds_that_cannot_make_a_plan_are_exit_2(seeds, words):
    result = _validate(_dump(VALID | {"seeds": seeds}))
    _assert_clean(result, str(seeds))
    assert result.exit_code == 2 and words in result.output, result.output


def test_compare_rejects_an_alias_bomb_and_a_dotted_name_before_anything_runs(tmp_path):
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
    )
    dotted = _dump(VALID | {"name": ".."})
    for text, words in ((bomb, "once YAML aliases are expanded"), (dotted, "name: a run name cannot start")):
        path = tmp_path / "recipe.yaml"
        path.write_text(text)
        with _alarm(HANG_SECONDS):
            result = CliRunner().invoke(app, ["compare", str(path), "--out", str(tmp_path / "run")])
        _assert_clean(result, text)
        assert result.exit_code == 2 and words in result.output, result.output
        assert not (tmp_path / "run").exists()


# --- numbers: a non-finite value anywhere is refused where it is written ---------------------------------


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


NUMBER_PATHS = [
    p for p in PATHS if isinstance(_get(VALID, p), (int, float)) and not isinstance(_get(VALID, p), bool)
]
# places a free-form value goes: hyperparameters (new or swept ones) and model kwargs, at any depth
FREE_PATHS = [("optimizers", 0, "eps"), ("optimizers", 1, "dampening"), ("model", "kwargs", "drop_rate")]
nested = st.recursive(
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: [0.5, *xs])
        | st.dictionaries(st.sampled_from(["grid", "a", "b"]), inner, min_size=1, max_size=2)
    ),
    max_leaves=4,
)


@FUZZ
@given(
    st.sampled_from(NUMBER_PATHS) | st.sampled_from(FREE_PATHS),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]) | nested,
)
def test_a_non_finite_number_anywhere_is_one_input_error_naming_its_field(path, value):
    """Wherever a NaN or an infinity is written (a recipe number, a hyperparameter or a model kwarg, at any
    depth of a list or mapping), loading fails with one InputError whose field is that key (or the key
    that holds it): never a run that 'diverges' or compares against nan, never a traceback."""
    from adacli.recipe.source import format_path

    doc = copy.deepcopy(VALID)
    _set(doc, path, value)
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "recipe.yaml"
        file.write_text(_dump(doc))
        with pytest.raises(InputError) as e:
            load_recipe(file)
    err = e.value
    assert err.exit_code == 2 and "\n" not in str(err), str(err)
    where = format_path(path)  # the key itself, a key inside its value, or the key that holds it
    assert err.field is not None and (err.field.startswith(where) or where.startswith(err.field)), str(err)
    assert err.line is not None


@FUZZ
@given(
    base=st.dictionaries(st.sampled_from(["lr", "weight_decay", "eps"]), st.sampled_from([1e-3, 0.0, 1e-8])),
    override=st.dictionaries(
        st.sampled_from(["lr", "weight_decay", "amsgrad"]), st.sampled_from([0.1, True])
    ),
)
def test_merge_keys_give_what_writing_the_keys_out_gives(base, override):
    """``{<<: *base, ...}``: the merged optimizer has exactly the base's keys overridden by those written
    beside the merge (YAML's rule), as if written out."""
    flow = lambda d: ", ".join(f"{k}: {json.dumps(v)}" for k, v in d.items())  # noqa: E731
    text = _dump({k: v for k, v in VALID.items() if k != "optimizers"}) + (
        f"optimizers:\n  - &base {{name: adam, label: a{', ' + flow(base) if base else ''}}}\n"
        f"  - {{<<: *base, label: b{', ' + flow(override) if override else ''}}}\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "recipe.yaml"
        file.write_text(text)
        recipe = load_recipe(file)
    assert recipe.optimizers[0].hparams == base
    assert recipe.optimizers[1].hparams == {**base, **override}
    assert recipe.optimizers[1].name == "adam" and recipe.optimizers[1].label == "b"
