"""Reading a YAML file with a line number for every key, and pydantic errors as one-line InputErrors.

Shared by recipe and suite files: YAML -> data plus the 1-based line of every mapping key and sequence
item by path, within limits that keep a malformed or hostile file from hanging the loader; a pydantic
validation error -> ``file:line: field.path: what is wrong; allowed: ...; did you mean ...``. Nothing
here knows what a recipe holds: the model to validate against (``root``) is always passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from adacli.errors import InputError, closest

KeyPath = tuple[str | int, ...]


def format_path(path: KeyPath) -> str:
    """``optimizers[0].lr``; a key that is not a plain name is quoted (``model['a b']``)."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not re.fullmatch(r"[\w.:\-]+", str(p)):
            out += f"[{str(p)!r}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _recipe_loader() -> type:
    """A SafeLoader that reads ``3e-6`` and ``1E5`` as floats.

    PyYAML follows YAML 1.1, where a float needs a dot (``3.0e-6``); ``lr: 3e-6`` would arrive as the
    string ``"3e-6"`` and fail deep inside an optimizer's constructor. YAML 1.2 (and every user) reads
    it as a number, so we add that resolver.
    """
    import yaml

    # libyaml's parser when PyYAML has it (about 10x faster on a large malformed file), else Python's.
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class RecipeLoader(base):  # type: ignore[misc, valid-type]
        pass

    RecipeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return RecipeLoader


# Limits that keep a malformed or hostile file from hanging or crashing the loader (DESIGN.md section
# 6: a malformed recipe is rejected in < 2 s whatever its size or aliases). A real recipe is a few
# hundred bytes, a handful of aliases, nested a few levels, a few hundred values.
MAX_RECIPE_BYTES = 64 * 1024
MAX_ALIASES = 100
MAX_DEPTH = 40
MAX_VALUES = 5_000  # keys and items after aliases are expanded (an alias bomb expands exponentially)


def _check_yaml_shape(text: str, file: str) -> None:
    """Count aliases and nesting on the event stream (linear, no recursion) before anything is built."""
    import yaml

    aliases = depth = 0
    for events, event in enumerate(yaml.parse(text, Loader=_recipe_loader()), start=1):
        if events > 2 * MAX_VALUES:
            line = event.start_mark.line + 1
            raise InputError(f"more than {MAX_VALUES} values: not a recipe", file=file, line=line)
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                line = event.start_mark.line + 1
                msg = f"more than {MAX_ALIASES} YAML aliases (*name): a recipe needs a few at most"
                raise InputError(msg, file=file, line=line)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise InputError(f"nested more than {MAX_DEPTH} levels deep", file=file, line=line)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML (safe) and record the 1-based line of every mapping key and sequence item by path.

    Duplicate keys are errors: YAML would silently keep the last one, which is the same silent-typo
    trap as an unknown key. Merge keys (``<<: *base``, ``<<: [*a, *b]``) are YAML's way to share
    settings and are accepted: the merged keys take the line where they are defined, and a key written
    next to the merge overrides the merged one, as YAML says. Aliases, nesting and the expanded size are
    limited (see MAX_*); only YAML's standard tags (no Python objects).
    """
    import yaml

    loader = _recipe_loader()(text)
    lines: dict[KeyPath, int] = {}
    try:
        _check_yaml_shape(text, file)
        node = loader.get_single_node()
        if node is None:
            return None, lines
        _LineWalker(loader, file, lines).walk(node, ())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(f"{e.context or ''} {e.problem or ''}".split())
        raise InputError(
            f"invalid YAML: {problem}", file=file, line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {' '.join(str(e).split())}", file=file) from None
    except RecursionError:  # the limits above should prevent it; never a traceback if they do not
        raise InputError(f"nested too deeply (limit {MAX_DEPTH} levels)", file=file) from None
    finally:
        loader.dispose()
    return data, lines


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _LineWalker:
    """Walks the node tree once: the line of every key and item, duplicate keys, the expanded size."""

    def __init__(self, loader: Any, file: str, lines: dict[KeyPath, int]) -> None:
        self.loader, self.file, self.lines, self.count = loader, file, lines, 0

    def walk(self, n: Any, path: KeyPath) -> None:
        import yaml

        self.count += 1
        if self.count > MAX_VALUES:
            msg = f"more than {MAX_VALUES} values once YAML aliases are expanded (an alias bomb?)"
            raise InputError(msg, file=self.file, line=n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            self._mapping(n, path)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                self.walk(item, (*path, i))

    def _mapping(self, n: Any, path: KeyPath) -> None:
        """Duplicates among the keys written in this mapping are errors; then the merge keys are resolved
        (YAML's rules, in place) and every resulting key is walked."""
        seen: dict[Any, int] = {}
        for k, _ in n.value:
            if k.tag == _MERGE_TAG:
                continue
            key = self.loader.construct_object(k, deep=True)
            line = k.start_mark.line + 1
            if isinstance(key, (str, int)) and key in seen:
                raise InputError(
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    file=self.file,
                    line=line,
                    field=format_path((*path, key)),
                )
            if isinstance(key, (str, int)):
                seen[key] = line
        if any(k.tag == _MERGE_TAG for k, _ in n.value):
            self.loader.flatten_mapping(n)  # merged keys first, the written ones after (they win)
        for k, v in n.value:
            key = self.loader.construct_object(k, deep=True)
            if isinstance(key, (str, int)):
                self.lines[(*path, key)] = k.start_mark.line + 1
                self.walk(v, (*path, key))


def _field_model(path: KeyPath, root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model that holds the keys at ``path`` (e.g. ('optimizers', 0) -> OptimizerSpec);
    ``root``: the model of the whole file (a recipe, or a suite file)."""
    import typing

    model: Any = root
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        model = None
        stack = [ann]
        while stack:  # unwrap Optional[...] / list[...] / Annotated[...] down to a model class
            a = stack.pop()
            if isinstance(a, type) and issubclass(a, BaseModel):
                model = a
                break
            stack.extend(typing.get_args(a))
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _literal_values(path: KeyPath, root: type[BaseModel]) -> list[str] | None:
    import typing

    if not path or not isinstance(path[-1], str):
        return None
    parent = _field_model(path[:-1], root)
    if parent is None or path[-1] not in parent.model_fields:
        return None
    ann = parent.model_fields[path[-1]].annotation
    for a in [ann, *typing.get_args(ann)]:
        if typing.get_origin(a) is Literal:
            return [str(v) for v in typing.get_args(a)]
    return None


def _data_path(data: Any, loc: tuple, root: type[BaseModel]) -> KeyPath:
    """The part of a pydantic error location that exists in the data (drops union tags like 'list[int]'),
    plus a missing field's name (so 'model.name' is named even though the key is absent)."""
    path: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        if _holds(cur, part):
            path.append(part)
            cur = cur[part]
            continue
        if i + 1 < len(loc) and isinstance(cur, (dict, list)) and _holds(cur, loc[i + 1]):
            continue  # a union member's tag ('SeedPlan', 'dict[str,...]') between a key and its sub-key
        model = _field_model(tuple(path), root)
        if isinstance(part, str) and model is not None and part in model.model_fields:
            path.append(part)  # a missing field
        elif model is not None and i + 1 < len(loc) and loc[i + 1] in model.model_fields:
            path.append(loc[i + 1])  # a missing key of a union member: 'seeds', 'SeedPlan', 'until'
        break
    return tuple(path)


def _holds(cur: Any, part: Any) -> bool:
    """Whether ``part`` is a key of the mapping (or an index of the list) ``cur``."""
    if isinstance(cur, dict):
        return part in cur
    return isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)


#: the errors of a value that matched none of a free-form value's types (see adacli.recipe.spec.FreeValue)
_FREE_VALUE_TYPES = {"string_type", "list_type", "dict_type"}


def line_at(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    for i in range(len(path), 0, -1):
        if path[:i] in lines:
            return lines[path[:i]]
    return None


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validation_error(
    e: Any,
    data: Any,
    lines: dict[KeyPath, int],
    file: str,
    root: type[BaseModel],
    choices: Mapping[KeyPath, Sequence[str]] | None = None,
    messages: Mapping[KeyPath, str] | None = None,
) -> InputError:
    """The first pydantic error as one InputError: file, line, field path, what is allowed.

    ``root``: the model validated, so that allowed keys and values come from it; ``choices``: the names
    a free-text field accepts (``("dataset", "name")`` -> the dataset names), for its "allowed" list;
    ``messages``: what a top-level key holds, said instead of pydantic's list of union members."""
    errors = e.errors(include_url=False)
    # An unknown key first: a misspelt required key ('optimisers') is also reported missing, and the
    # unknown key with its did-you-mean is the one that says what to fix.
    first = next((err for err in errors if err["type"] == "extra_forbidden"), None)
    # then a non-finite number: inside a free-form value it is one of many union members' errors
    first = first or next((err for err in errors if err["type"] == "finite_number"), errors[0])
    path = _data_path(data, first["loc"], root)
    same = [err for err in errors if _data_path(data, err["loc"], root) == path]
    kind = first["type"]
    line = line_at(lines, path)
    field = format_path(path) or None

    if kind == "extra_forbidden":
        key = path[-1] if path else first["loc"][-1]
        model = _field_model(path[:-1], root)
        allowed = list(model.model_fields) if model else None
        return InputError(
            f"unknown key {key!r}",
            file=file,
            line=line,
            field=field,
            allowed=allowed,
            suggestion=closest(str(key), allowed) if allowed else None,
        )
    value = first.get("input")
    named = (choices or {}).get(path)
    if named is not None and isinstance(value, str):
        what = path[-2] if len(path) > 1 else path[-1]
        return InputError(
            f"unknown {what} {value!r}",
            file=file,
            line=line,
            field=field,
            allowed=named,
            suggestion=closest(value, named),
        )
    if kind == "literal_error":
        allowed = _literal_values(path, root)
        return InputError(
            f"{value!r} is not allowed",
            file=file,
            line=line,
            field=field,
            allowed=allowed,
            suggestion=closest(str(value), allowed) if allowed else None,
        )
    if kind == "missing":
        return InputError("missing required key", file=file, line=line, field=field)
    kinds = {err["type"] for err in same}
    if "finite_number" in kinds:  # .nan / .inf (also where a union tried other types first)
        msg = f"must be a finite number (got {_short_repr(value)})"
        return InputError(msg, file=file, line=line, field=field)
    if kinds >= _FREE_VALUE_TYPES:  # a free-form value (hyperparameter, model kwarg) YAML made odd
        msg = f"must be a number, a string, true/false, null, a list or a mapping (got {_short_repr(value)})"
        return InputError(msg, file=file, line=line, field=field)
    shape = (messages or {}).get(path[:1])
    if shape is not None and kind != "value_error":  # the field's own validators say what they mean
        return InputError(f"{shape} (got {_short_repr(value)})", file=file, line=line, field=field)
    msgs = list(dict.fromkeys(err["msg"].removeprefix("Value error, ") for err in same))
    msg = " or ".join(m[0].lower() + m[1:] if i else m for i, m in enumerate(msgs))
    if kind != "missing" and not isinstance(value, (dict, list)) and value is not None:
        msg += f" (got {_short_repr(value)})"
    return InputError(msg, file=file, line=line, field=field)
