"""The image and the Kubernetes manifests that run it: ``Containerfile``,
``config/k8s-*.yaml``, the README's "Deploy on Kubernetes" and the CI step that lints and
validates them (``.ci/deploy-check``). The image itself is not built here: no container
registry is reachable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILE = ROOT / "Containerfile"
CHECK = ROOT / ".ci" / "deploy-check"
DEPLOYMENT = ROOT / "config" / "k8s-deployment.yaml"
CRONJOB = ROOT / "config" / "k8s-cronjob.yaml"
MANIFESTS = sorted((ROOT / "config").glob("k8s-*.yaml"))
TOOLS = Path(sys.executable).parent  # the virtualenv's bin: pip install -e '.[test]' puts both
IMAGE_REPOSITORY = "registry.example.com/snapworker"
STATE_URL_ENV = "SNAPWORKER_STATE_URL"
PINNED_SLIM_PYTHON = r"python:3\.(1[1-9]|[2-9]\d)[\w.-]*-slim[\w.-]*(@sha256:[0-9a-f]{64})?"


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _image() -> str:
    return f"{IMAGE_REPOSITORY}:{_version()}"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _workload(path: Path) -> dict[str, Any]:
    return next(d for d in _docs(path) if d["kind"] in ("Deployment", "CronJob"))


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Deploy on Kubernetes\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs the CI step (``.ci/deploy-check``) with the tools of this virtualenv."""
    for tool in ("hadolint", "kubernetes-validate"):
        if not (TOOLS / tool).exists():
            pytest.skip(f"{tool} is not installed in {TOOLS} (pip install -e '.[test]')")
    return subprocess.run(
        ["bash", str(CHECK), *map(str, args)],
        env={**os.environ, "VENV_BIN": str(TOOLS)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _broken_copy(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {source.name}: update the test"
    broken = tmp_path / source.name
    broken.write_text(text.replace(old, new))
    return broken


# --- the image name: README, manifests and the package version agree ---


def test_manifests_run_the_image_the_readme_builds_tagged_with_the_package_version() -> None:
    image = _image()
    section = _readme_section()
    built = re.findall(r"(?:podman|docker) build -t (\S+)", section)
    pushed = re.findall(r"(?:podman|docker) push (\S+)", section)
    assert built == [image] and pushed == [image]
    assert re.findall(r"(?:podman|docker) build -t (\S+)", CONTAINERFILE.read_text()) == [image]
    assert {DEPLOYMENT, CRONJOB} <= set(MANIFESTS)
    for manifest in MANIFESTS:
        containers = _pod_spec(_workload(manifest))["containers"]
        assert [c["image"] for c in containers] == [image], manifest.name


# --- the CI step: passes on the real files, fails on broken copies ---


def test_ci_runs_the_deploy_checks_and_they_pass_on_the_real_files() -> None:
    assert ".ci/deploy-check\n" in (ROOT / ".ci" / "run").read_text()
    result = _check()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("FROM python:3.12-slim-trixie AS runtime", "FROM python:latest AS runtime", "DL3007"),
        ("USER 10001:10001", "USER root", "DL3002"),
        ("WORKDIR /var/lib/snapworker\n", "WORKDIR /var/lib/snapworker\nRUN sudo true\n", "DL3004"),
    ],
    ids=["latest-base", "root-user", "sudo"],
)
def test_hadolint_fails_a_broken_containerfile(
    tmp_path: Path, old: str, new: str, rule: str
) -> None:
    result = _check("containerfile", _broken_copy(tmp_path, CONTAINERFILE, old, new))
    assert result.returncode != 0 and rule in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("manifest", "old", "new"),
    [
        (DEPLOYMENT, "  replicas: 3\n", "  replica: 3\n"),  # unknown field: strict mode
        (DEPLOYMENT, "      containers:\n", "      containers: snapworker\n      xcontainers:\n"),
        (DEPLOYMENT, "terminationGracePeriodSeconds: 600", "terminationGracePeriodSeconds: ten"),
        (CRONJOB, "  jobTemplate:\n", "  jobTemplates:\n"),
        (CRONJOB, "restartPolicy: Never", "restartPolicy: [Never]"),
    ],
    ids=["replica", "containers-string", "grace-string", "jobTemplates", "restartPolicy-list"],
)
def test_kubernetes_validate_fails_a_broken_manifest(
    tmp_path: Path, manifest: Path, old: str, new: str
) -> None:
    result = _check("manifests", _broken_copy(tmp_path, manifest, old, new))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "did not validate" in output, output


# --- the Containerfile ---


def test_containerfile_is_multi_stage_slim_pinned_non_root_without_secrets() -> None:
    text = CONTAINERFILE.read_text()
    lines = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert len(froms) >= 2
    for base in froms:  # pinned by tag (a digest may follow), Python 3.11+, slim
        assert re.fullmatch(PINNED_SLIM_PYTHON, base), base
    assert "sha256" in text and "imagetools inspect" in text  # how to pin by digest
    runtime = "\n".join(lines[max(i for i, s in enumerate(lines) if s.startswith("FROM ")) :])
    assert not re.search(r"\b(gcc|build-essential|apt-get)\b", runtime)  # no compiler
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1])  # numeric, not root
    assert 'ENTRYPOINT ["snapworker"]' in lines
    # No secret baked in: no ENV/ARG (continuation lines included) sets one.
    assert not re.search(r"(?i)(secret|password|token|access_key)\w*\s*=", "\n".join(lines))
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "**/*.db"} <= set(ignored)


# --- the pods ---


@pytest.mark.parametrize("manifest", [DEPLOYMENT, CRONJOB], ids=lambda p: p.name)
def test_pod_is_hardened_and_takes_the_state_url_from_a_secret(manifest: Path) -> None:
    docs = _docs(manifest)
    pod = _pod_spec(_workload(manifest))
    context = pod["securityContext"]
    uid = int(re.findall(r"(?m)^USER (\d+)", CONTAINERFILE.read_text())[-1])
    assert context["runAsNonRoot"] is True and context["runAsUser"] == uid
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"] and not security.get("privileged")
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    env = {e["name"]: e for e in container["env"]}
    ref = env[STATE_URL_ENV]["valueFrom"]["secretKeyRef"]
    section = _readme_section()  # the README creates that Secret with that key
    assert f"kubectl create secret generic {ref['name']}" in section
    assert f"--from-literal={ref['key']}=" in section
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    config = yaml.safe_load(config_map["data"]["snapworker.yaml"])
    assert "state_url" not in config  # nor any password in the ConfigMap
    assert not any("postgresql" in str(e.get("value", "")) for e in container["env"])
    service_account = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert pod["serviceAccountName"] == service_account["metadata"]["name"]


def test_deployment_probes_healthz_on_the_configured_port_with_three_replicas() -> None:
    docs = _docs(DEPLOYMENT)
    workload = _workload(DEPLOYMENT)
    # Replicas share the (policy, target, region) leases on the PostgreSQL state DB.
    assert workload["spec"]["replicas"] == 3
    assert workload["spec"]["strategy"]["type"] == "RollingUpdate"
    (container,) = _pod_spec(workload)["containers"]
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    http = yaml.safe_load(config_map["data"]["snapworker.yaml"])["daemon"]["http"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert http["host"] == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and ports.get(get["port"], get["port"]) == http["port"]


@pytest.mark.parametrize("manifest", [DEPLOYMENT, CRONJOB], ids=lambda p: p.name)
def test_grace_period_is_above_the_stop_bound_even_with_a_queue(
    manifest: Path, tmp_path: Path
) -> None:
    # Imported here: only this test depends on where the package keeps these.
    from snapworker.config import load_config
    from snapworker.entrypoints.daemon import stop_bound_seconds

    config_map = next(d for d in _docs(manifest) if d["kind"] == "ConfigMap")
    config = yaml.safe_load(config_map["data"]["snapworker.yaml"])
    config.setdefault("daemon", {})["sqs_queue_url"] = "https://sqs.example/q"  # the worst case
    path = tmp_path / "snapworker.yaml"
    path.write_text(yaml.safe_dump(config))
    bound = stop_bound_seconds(load_config(path))
    assert bound >= 515  # the README's figure with the default settings
    assert _pod_spec(_workload(manifest))["terminationGracePeriodSeconds"] > bound


# --- what the manifests assume of the application ---


def test_state_url_comes_from_the_environment_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snapworker.config import load_config

    path = tmp_path / "snapworker.yaml"
    path.write_text("state_url: sqlite:///from-the-file.db\npolicies:\n  - name: p\n")
    url = f"sqlite:///{tmp_path / 'from-the-secret.db'}"
    monkeypatch.setenv(STATE_URL_ENV, url)
    assert load_config(path).state_url == url


# --- what the shipped configs cite ---

TOP_LEVEL = ("docs", "config", "tests", "snapworker", "bench", "migrations", ".ci")
REPO_PATH = re.compile(
    r"(?<![\w/.~:-])((?:" + "|".join(map(re.escape, TOP_LEVEL)) + r")/[\w./-]*\w)"
)
ROOT_FILE = re.compile(r"(?<![\w/.-])([\w-]+\.(?:md|toml)|Containerfile|Dockerfile)\b")
URL = re.compile(r"https?://([^/\s:'\"]+)")
VALUE_HOSTS = re.compile(r"localhost|127\.0\.0\.1|[\w.-]+\.amazonaws\.com|registry\.example\.com")


@pytest.mark.parametrize("path", sorted((ROOT / "config").iterdir()), ids=lambda p: p.name)
def test_a_shipped_config_cites_only_files_the_repository_has(path: Path) -> None:
    """Issue 16: ``config/example.yaml`` cites no file that the repository lacks; nor does any
    other file in ``config/``. A path under one of the repository's top-level directories,
    or a top-level file (``*.md``, ``*.toml``, ``Containerfile``), must exist; a URL may
    only be an example value (localhost, an AWS endpoint, the example registry), not a page
    that documents snapworker somewhere else. Paths on the target host (``/etc/...``,
    ``/var/lib/...``) are not citations."""
    missing = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        for cited in REPO_PATH.findall(line) + ROOT_FILE.findall(line):
            if not (ROOT / cited).exists():
                missing.append(f"{path.name}:{n}: {cited}")
        for host in URL.findall(line):
            if VALUE_HOSTS.fullmatch(host) is None:
                missing.append(f"{path.name}:{n}: a URL on {host}")
    assert not missing, "\n".join(missing)
