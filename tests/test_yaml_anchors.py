"""YAML anchors, aliases and merge keys in a config: how operators share one retention block
between policies. Accepted, and bounded: a file whose aliases would expand exponentially (a
"billion laughs") or quadratically is refused before anything is expanded, with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapworker.config import ConfigError, load_config
from tests.test_config import BAD

SHARED = """\
policies:
  - name: prod-nightly
    select: {clusters: [prod-a]}
    copy_automated: true
    retention: &retention
      max_age_days: 35
      keep_last: 3
  - name: prod-weekly
    select: {clusters: [prod-b]}
    copy_automated: true
    retention: *retention
"""

MERGED = """\
policies:
  - &base
    name: prod-nightly
    select: {clusters: [prod-a]}
    copy_automated: true
    retention: &retention
      max_age_days: 35
      keep_last: 3
  - <<: *base
    name: prod-weekly
    select: {clusters: [prod-b]}
    retention:
      <<: *retention
      keep_last: 5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "snapworker.yaml"
    path.write_text(text)
    return path


def test_a_retention_block_shared_by_anchor_and_alias(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, SHARED))
    nightly, weekly = cfg.policies
    assert weekly.retention == nightly.retention
    assert (weekly.retention.max_age_days, weekly.retention.keep_last) == (35, 3)
    assert weekly.select.clusters == ["prod-b"]


def test_merge_keys_take_the_base_and_the_keys_written_win(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, MERGED))
    nightly, weekly = cfg.policies
    assert (nightly.name, weekly.name) == ("prod-nightly", "prod-weekly")
    assert weekly.copy_automated is True  # from the base
    assert weekly.select.clusters == ["prod-b"]  # written: wins over the base's
    assert (weekly.retention.max_age_days, weekly.retention.keep_last) == (35, 5)
    assert (nightly.retention.max_age_days, nightly.retention.keep_last) == (35, 3)


def test_a_wrong_value_in_a_shared_block_names_the_file_policy_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, SHARED.replace("keep_last: 3", "keep_last: three"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    shown = str(info.value)
    # once per policy that uses the block, each at the block's line (7)
    assert f"{path}:7: policy 'prod-nightly': retention.keep_last: must be an integer" in shown
    assert f"{path}:7: policy 'prod-weekly': retention.keep_last: must be an integer" in shown


def test_a_wrong_value_merged_from_a_base_names_the_file_policy_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, MERGED.replace("max_age_days: 35", "max_age_days: soon"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    shown = str(info.value)
    assert f"{path}:7: policy 'prod-weekly': retention.max_age_days: must be an integer" in shown
    assert f"{path}:7: policy 'prod-nightly': retention.max_age_days: must be an integer" in shown


def test_an_unknown_key_merged_in_is_refused_where_it_is_written(tmp_path: Path) -> None:
    path = _write(tmp_path, MERGED.replace("    copy_automated: true\n", "    copy_automatic: x\n"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:5: policy 'prod-weekly': copy_automatic: unknown key" in str(info.value)


@pytest.mark.parametrize("name", ["yaml_alias_bomb.yaml", "yaml_quadratic_blowup.yaml"])
def test_an_alias_bomb_is_refused_at_once(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(BAD / name)
    assert time.perf_counter() - started < 0.5
    assert f"{BAD / name}:" in str(info.value)
    assert "YAML aliases expand too far" in str(info.value)


@pytest.mark.parametrize("name", ["yaml_alias_bomb.yaml", "yaml_quadratic_blowup.yaml"])
def test_the_cli_refuses_an_alias_bomb_with_exit_2(name: str, tmp_path: Path) -> None:
    # The real CLI: a clean exit 2 naming the file and line, quickly (the interpreter's own
    # start-up aside: a billion laughs expanded would take minutes and gigabytes).
    path = tmp_path / name
    path.write_bytes((BAD / name).read_bytes())
    env = dict(os.environ, SNAPWORKER_CONFIG="")
    started = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "snapworker", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert time.perf_counter() - started < 20
    line = {"yaml_alias_bomb.yaml": 5, "yaml_quadratic_blowup.yaml": 4}[name]
    assert f"{path}:{line}: YAML aliases expand too far here" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_cli_validates_a_config_with_anchors_and_merge_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, MERGED)
    r = subprocess.run(
        [sys.executable, "-m", "snapworker", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "ok (2 policies)" in r.stdout
