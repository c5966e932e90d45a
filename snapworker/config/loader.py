"""Reading a configuration file as hostile input: size, encoding, a restricted YAML loader,
then the models. :func:`load_config` is the one entry.

Before any parsing the file must be a regular file of at most 1 MiB of UTF-8 text without NUL
bytes. The YAML is composed with PyYAML's safe loader, further restricted: no tags other than
the plain core ones (so no ``!!python/object``), no duplicate keys (PyYAML would silently keep
the last one), no complex keys, at most 32 levels of nesting. Anchors, aliases and merge keys
(``<<: *base``) are accepted, bounded: while composing, each node's size once every alias is
expanded is counted (a shared node once, so the count is linear in the file), and a file whose
aliases would expand to more than ``MAX_ALIAS_EXPANSION`` values beyond those written out (a
"billion laughs", or a quadratic blow-up) is refused before anything is expanded. Mapping
keys are always read as strings (``no:`` is the key ``"no"``, not ``False``), and YAML 1.1
timestamps stay strings.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from snapworker.config.checks import _show, _state_url
from snapworker.config.models import Config
from snapworker.config.problems import (
    ConfigError,
    Finding,
    Problem,
    _dotted,
    _fail,
    _Locator,
    _problems,
)

ENV_CONFIG = "SNAPWORKER_CONFIG"
ENV_STATE_URL = "SNAPWORKER_STATE_URL"
"""Set and non-empty, it replaces the file's ``state_url`` (a Secret's URL, with its
password, need not be written in the config file)."""
DEFAULT_CONFIG_FILE = "snapworker.yaml"
MAX_CONFIG_BYTES = 1024 * 1024
MAX_NESTING = 32
MAX_ALIAS_EXPANSION = 10_000
_MAX_NUMBER_TEXT = 100


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The configuration file to use: ``explicit``, else ``$SNAPWORKER_CONFIG``, else
    ``snapworker.yaml`` (in the current directory)."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    from_env = os.environ.get(ENV_CONFIG, "")
    if from_env:
        return Path(from_env).expanduser()
    return Path(DEFAULT_CONFIG_FILE)


def _read_text(path: Path, file: str) -> str:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        _fail(file, "no such file")
    except OSError as exc:
        _fail(file, f"cannot read: {exc.strerror or exc}")
    if stat.S_ISDIR(info.st_mode):
        _fail(file, "is a directory, not a configuration file")
    if not stat.S_ISREG(info.st_mode):
        _fail(file, "is not a regular file")
    too_large = f"is too large: the limit is 1 MiB ({MAX_CONFIG_BYTES} bytes)"
    if info.st_size > MAX_CONFIG_BYTES:
        _fail(file, f"{too_large}, this file has {info.st_size} bytes")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        _fail(file, f"cannot read: {exc.strerror or exc}")
    if len(raw) > MAX_CONFIG_BYTES:
        _fail(file, too_large)
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        _fail(file, "contains a NUL byte: not a text file (binary? UTF-16?)", line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        _fail(file, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x})", line)
    return text.removeprefix("\ufeff")


class _Refused(yaml.MarkedYAMLError):
    """A YAML construct this loader refuses (with the mark of where it is)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without exotic tags, duplicate/complex keys or deep nesting, whose aliases
    and merge keys are expanded within a bound."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._written = 0  # nodes composed from the text (an alias is not one)
        self._sizes: dict[int, int] = {}  # id(node) -> its size with every alias expanded

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor) if event.anchor is not None else None
            if target is not None and id(target) not in self._sizes:
                raise _Refused(
                    f"YAML alias *{event.anchor} refers to a node that contains it",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and tag not in _ALLOWED_TAGS:
            shown = tag.replace(_CORE, "!!") if isinstance(tag, str) else tag
            raise _Refused(f"YAML tag {shown!r} is not allowed", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _Refused(f"nested more than {MAX_NESTING} levels deep", event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._count(node)
        return node

    def _count(self, node: yaml.Node) -> None:
        """Record ``node``'s expanded size (its children are recorded already); refuse the
        file once aliases would expand it too far beyond what is written out."""
        self._written += 1
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        self._sizes[id(node)] = size
        if size - self._written > MAX_ALIAS_EXPANSION:
            raise _Refused(
                f"YAML aliases expand too far here (over {MAX_ALIAS_EXPANSION} values beyond "
                "those written out: a 'billion laughs'?); share smaller blocks",
                node.start_mark,
            )

    def compose_mapping_node(self, anchor: dict[Any, yaml.Node]) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[str, int] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        explicit: list[tuple[yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise _Refused("mapping keys must be plain strings", key.start_mark)
            if key.value in seen:
                raise _Refused(
                    f"duplicate key {key.value!r} (first at line {seen[key.value]})",
                    key.start_mark,
                )
            seen[key.value] = key.start_mark.line + 1
            if key.tag == _CORE + "merge":
                merged.extend(_merge_sources(key, value))
            else:
                explicit.append((key, value))
        if merged or len(explicit) != len(node.value):
            # `<<`: the keys of the merged mappings this one does not set, the first merged
            # mapping winning (YAML's merge key); the node then reads as if written in full,
            # so an error inside a merged block points at that block's line.
            keys = {key.value for key, _value in explicit}
            for key, value in merged:
                if key.value not in keys:
                    keys.add(key.value)
                    explicit.append((key, value))
            node.value = explicit
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, OverflowError, TypeError, ArithmeticError) as exc:
            raise _Refused(f"invalid value: {exc}", node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        # Keys are the scalar's text: `no:` is the key "no", `1:` the key "1".
        return {key.value: self.construct_object(value, deep=deep) for key, value in node.value}

    def _construct_as_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_scalar(node)

    def _construct_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > _MAX_NUMBER_TEXT:  # int() of a huge string is slow, then refused
            raise _Refused(f"number too long ({len(node.value)} characters)", node.start_mark)
        return int(self.construct_yaml_int(node))


def _merge_sources(key: yaml.Node, value: yaml.Node) -> list[tuple[yaml.Node, yaml.Node]]:
    """The pairs that ``<<: value`` merges: one mapping, or a list of mappings."""
    sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
    pairs: list[tuple[yaml.Node, yaml.Node]] = []
    for source in sources:
        if not isinstance(source, yaml.MappingNode):
            raise _Refused(
                "a YAML merge key (<<) takes a mapping or a list of mappings", key.start_mark
            )
        pairs.extend(source.value)
    return pairs


# YAML 1.1 timestamps (2026-01-01) and the "=" value indicator stay plain strings.
_StrictLoader.add_constructor(_CORE + "timestamp", _StrictLoader._construct_as_text)
_StrictLoader.add_constructor(_CORE + "value", _StrictLoader._construct_as_text)
_StrictLoader.add_constructor(_CORE + "int", _StrictLoader._construct_int)


def _parse_yaml(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        mark = exc.problem_mark
        _fail(file, str(exc.problem), mark.line + 1 if mark is not None else None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = str(exc.problem or exc.context or "cannot be parsed")
        if exc.context and exc.problem and exc.problem.startswith("but "):
            message = f"{exc.context} {exc.problem}"
        elif exc.context and exc.problem:
            where = ""
            if exc.context_mark is not None and (
                mark is None or exc.context_mark.line != mark.line
            ):
                where = f" at line {exc.context_mark.line + 1}"
            message = f"{message} ({exc.context}{where})"
        if "'\\t'" in message:
            message += "; indent with spaces, not tabs"
        elif "<block" in message:
            message += "; check the indentation"
        _fail(file, f"invalid YAML: {message}", mark.line + 1 if mark is not None else None)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        _fail(file, f"invalid YAML: control character {shown} is not allowed", line)
    except yaml.YAMLError as exc:
        _fail(file, f"invalid YAML: {exc}")
    except RecursionError:
        _fail(file, "invalid YAML: nested too deeply")
    finally:
        if loader is not None:
            loader.dispose()
    return node, data


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"the scalar {_show(node.value)}"
    return "something else"


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate the configuration at ``path``.

    Raises ConfigError listing every problem found; never another exception for a bad file.
    """
    file = str(path)
    source = Path(path)
    text = _read_text(source, file)
    root, data = _parse_yaml(text, file)
    if root is None:
        _fail(file, "is empty: expected a mapping with at least a 'policies' list")
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        _fail(
            file,
            "the top level must be a mapping (state_url, aws, retry, daemon, policies), "
            f"not {_kind(root)}",
            root.start_mark.line + 1,
        )
    from_env = os.environ.get(ENV_STATE_URL, "")
    if from_env:
        data = {**data, "state_url": _state_url_from_env(from_env)}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, root, data, file)) from None
    config._source_path = source.absolute()
    return config


def _state_url_from_env(value: str) -> str:
    """``$SNAPWORKER_STATE_URL``, checked as ``state_url`` is; an error names the variable
    and never echoes the value (it may hold a password)."""
    try:
        return _state_url(value)
    except ValueError as exc:
        raise ConfigError([Problem(ENV_STATE_URL, None, None, "", str(exc))]) from None


def locate(config: Config, findings: Iterable[Finding], file: str | None = None) -> list[Problem]:
    """Problems naming the file, line, policy and field of ``findings`` about ``config``
    (see :mod:`.risks`), in the form of a load's errors. ``file``: the path as the operator
    gave it (default: where ``config`` was loaded from). The file is read again for the
    lines: these findings are few and rare, so a load does not keep the YAML tree for them.
    A file gone or changed since costs only the line numbers (None, or approximate)."""
    findings = list(findings)
    source = config.source_path
    file = file if file is not None else str(source) if source is not None else "<config>"
    where: _Locator | None = None
    if findings and source is not None:
        try:
            root, _ = _parse_yaml(_read_text(source, file), file)
        except ConfigError:
            root = None
        where = _Locator(root) if root is not None else None
    problems: list[Problem] = []
    for loc, message in findings:
        line = where.line(loc, at_key=False) if where is not None else None
        policy: str | None = None
        target: str | None = None
        field = loc
        if len(loc) >= 2 and loc[0] == "policies" and isinstance(loc[1], int):
            policy, field = config.policies[loc[1]].name, loc[2:]
        elif len(loc) >= 2 and loc[0] == "targets" and isinstance(loc[1], int) and config.targets:
            target, field = config.targets[loc[1]].name, loc[2:]
        problems.append(Problem(file, line, policy, _dotted(field), message, target=target))
    problems.sort(key=lambda p: p.line or 0)
    return problems
