"""deploy/: the Kubernetes and KServe manifests parse, fit the API schemas, and agree with
each other and with inferd (its CLI, its configuration, its health and metrics ports)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferd.cli import build_parser
from inferd.config import load_config
from inferd.repository import WORKFLOWS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted(DEPLOY.rglob("*.yaml"))
DEPLOY_VENV_PYTHON = ROOT / ".tools" / "venv-deploy" / "bin" / "python"
#: Where the image (Dockerfile) puts the default service: /srv/service is the repo's service/.
IMAGE_SERVICE = Path("/srv/service")


def documents() -> dict[str, dict[str, Any]]:
    """Every manifest's documents, by kind (each kind once)."""
    found: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert document["kind"] not in found, f"{path}: a second {document['kind']}"
            found[document["kind"]] = document
    return found


DOCS = documents()
DEPLOYMENT = DOCS["Deployment"]
POD = DEPLOYMENT["spec"]["template"]
CONTAINER = POD["spec"]["containers"][0]
RUNTIME = DOCS["ServingRuntime"]
RUNTIME_CONTAINER = RUNTIME["spec"]["containers"][0]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def serve_args(container: dict[str, Any]) -> Any:
    """The container's command parsed by inferd's own CLI parser (unknown flags exit)."""
    command = [*container.get("command", []), *container.get("args", [])]
    assert command[:2] == ["inferd", "serve"], command
    return build_parser().parse_args(command[1:])


def configmap_config(tmp_path: Path) -> Any:
    toml = DOCS["ConfigMap"]["data"]["inferd.toml"]
    path = tmp_path / "inferd.toml"
    path.write_text(toml, encoding="utf-8")
    # The container's environment, not the test process's (conftest sets INFERD_METRICS_ADDRESS).
    return load_config(path, environ=container_env(CONTAINER))


def test_every_manifest_is_found() -> None:
    assert sorted(DOCS) == ["ConfigMap", "Deployment", "InferenceService", "Service", "ServingRuntime"]


def test_manifests_fit_the_api_schemas() -> None:
    if not DEPLOY_VENV_PYTHON.exists():
        pytest.skip(f"{DEPLOY_VENV_PYTHON} is missing: `make deploy-tools` installs the kubernetes and kserve SDKs")
    result = subprocess.run(
        [str(DEPLOY_VENV_PYTHON), str(ROOT / "tests" / "deploy_schema_check.py"), *map(str, MANIFESTS)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" -> V1") == len(MANIFESTS), result.stdout


def test_the_checker_refuses_a_bad_manifest(tmp_path: Path) -> None:
    """The schema check can fail: a misspelt probe and a port given as a string."""
    if not DEPLOY_VENV_PYTHON.exists():
        pytest.skip(f"{DEPLOY_VENV_PYTHON} is missing: `make deploy-tools` installs the kubernetes and kserve SDKs")
    bad = tmp_path / "bad.yaml"
    broken = yaml.safe_load(yaml.safe_dump(DEPLOYMENT))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    bad.write_text(yaml.safe_dump(broken), encoding="utf-8")
    wrong_type = tmp_path / "wrong_type.yaml"
    broken = yaml.safe_load(yaml.safe_dump(DOCS["Service"]))
    broken["spec"]["ports"][0]["port"] = "50051"
    wrong_type.write_text(yaml.safe_dump(broken), encoding="utf-8")
    for path, problem in ((bad, "has no field readinesProbe"), (wrong_type, "expected int")):
        result = subprocess.run([str(DEPLOY_VENV_PYTHON), str(ROOT / "tests" / "deploy_schema_check.py"), str(path)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and problem in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("container", [CONTAINER, RUNTIME_CONTAINER], ids=["deployment", "servingruntime"])
def test_the_command_is_one_inferd_accepts(container: dict[str, Any]) -> None:
    args = serve_args(container)
    assert args.command == "serve" and args.address == "0.0.0.0:50051"
    assert args.config == ("/etc/inferd/inferd.toml" if container is CONTAINER else "/mnt/models/inferd.toml")


def test_an_unknown_flag_is_refused() -> None:
    with pytest.raises(SystemExit):
        serve_args({"command": ["inferd", "serve", "--port", "50051"]})


def test_the_configmap_loads_and_its_models_exist(tmp_path: Path) -> None:
    config = configmap_config(tmp_path)
    assert config.models, "the ConfigMap's inferd.toml declares no model"
    service = tomllib.loads((ROOT / "service" / "inferd.toml").read_text(encoding="utf-8"))
    built = {(IMAGE_SERVICE / model["path"]) for model in service["models"].values() if "path" in model}
    for name, model in config.models.items():
        assert model.workflow in WORKFLOWS, f"{name}: workflow {model.workflow!r} is not registered"
        if model.path is not None:
            # Files the image has: the default service's models, which the Dockerfile builds.
            assert Path(model.path) in built, f"{name}: {model.path} is not one of the image's models {sorted(built)}"
    mount = next(m for m in CONTAINER["volumeMounts"] if m["name"] == "config")
    assert Path(serve_args(CONTAINER).config).parent == Path(mount["mountPath"])
    volume = next(v for v in POD["spec"]["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == DOCS["ConfigMap"]["metadata"]["name"]


def test_ports_agree(tmp_path: Path) -> None:
    """The gRPC port: the listen address, the probes and the Service; the metrics port: the
    configuration (with the container's environment), the scrape annotation and the Service."""
    ports = {port["name"]: port["containerPort"] for port in CONTAINER["ports"]}
    grpc_port = port_of(serve_args(CONTAINER).address)
    assert ports["grpc"] == grpc_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert CONTAINER[probe]["grpc"] == {"port": grpc_port, "service": ""}, probe
    metrics = configmap_config(tmp_path).server.metrics
    assert metrics.enabled and metrics.address.startswith("0.0.0.0:")
    assert ports["metrics"] == port_of(metrics.address)
    annotations = POD["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    service = {port["name"]: port for port in DOCS["Service"]["spec"]["ports"]}
    assert service["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    for name in ("grpc", "metrics"):
        assert service[name]["targetPort"] in (name, ports[name]) and service[name]["port"] == ports[name]
    assert DOCS["Service"]["spec"]["selector"].items() <= POD["metadata"]["labels"].items()
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= POD["metadata"]["labels"].items()


def test_shutdown_fits_the_grace_period(tmp_path: Path) -> None:
    """SIGTERM -> drain_delay_s -> grace_s -> teardown must end before the kubelet's SIGKILL,
    and a liveness probe failing on NOT_SERVING must not restart a pod that is draining."""
    server = configmap_config(tmp_path).server
    shutdown = server.drain_delay_s + server.grace_s
    assert POD["spec"]["terminationGracePeriodSeconds"] >= shutdown + 5
    liveness = CONTAINER["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > shutdown
    startup = CONTAINER["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "too short for model setup"


@pytest.mark.parametrize("container, pod", [(CONTAINER, POD["spec"]), (RUNTIME_CONTAINER, RUNTIME["spec"])],
                         ids=["deployment", "servingruntime"])
def test_runs_as_non_root_read_only(container: dict[str, Any], pod: dict[str, Any]) -> None:
    context = {**pod.get("securityContext", {}), **container["securityContext"]}
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001  # the Dockerfile's user
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys() <= container["resources"]["limits"].keys()
    assert container["image"] == "inferd:full"  # what `make image` tags (IMAGE ?= inferd:$(VARIANT))


def test_kserve_runtime_and_inference_service_agree() -> None:
    spec = RUNTIME["spec"]
    assert spec["protocolVersions"] == ["grpc-v2"]
    assert {"inferd", "onnx"} <= {f["name"] for f in spec["supportedModelFormats"]}
    assert RUNTIME_CONTAINER["name"] == "kserve-container"
    assert RUNTIME_CONTAINER["ports"] == [{"name": "h2c", "containerPort": 50051, "protocol": "TCP"}]
    assert port_of(serve_args(RUNTIME_CONTAINER).address) == 50051
    for probe in ("readinessProbe", "livenessProbe"):
        assert RUNTIME_CONTAINER[probe]["grpc"]["port"] == 50051, probe
    metrics_port = port_of(container_env(RUNTIME_CONTAINER)["INFERD_METRICS_ADDRESS"])
    assert int(spec["annotations"]["prometheus.kserve.io/port"]) == metrics_port
    model = DOCS["InferenceService"]["spec"]["predictor"]["model"]
    assert model["runtime"] == RUNTIME["metadata"]["name"] and model["protocolVersion"] == "grpc-v2"
    assert model["modelFormat"]["name"] in {f["name"] for f in spec["supportedModelFormats"]}


def dockerfile_runtime() -> dict[str, list[str]]:
    """The Dockerfile's last stage: each instruction's arguments (continuations joined), by name."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        name, _, rest = line.strip().partition(" ")
        if not name or name.startswith("#"):
            continue
        if name.upper() == "FROM":
            stages.append({})
        elif stages:
            stages[-1].setdefault(name.upper(), []).append(rest.strip())
    return stages[-1]


def test_the_manifests_agree_with_the_image() -> None:
    """Ports, user and health command as the Dockerfile's runtime stage has them."""
    import json
    import shlex

    from inferd import healthcheck

    image = dockerfile_runtime()
    (expose,) = image["EXPOSE"]
    env = dict(item.split("=", 1) for line in image["ENV"] for item in shlex.split(line))
    assert port_of(env["INFERD_ADDRESS"]) == int(expose) == 50051
    (user,) = image["USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER by number, so that runAsNonRoot can check it"
    (healthcheck_line,) = image["HEALTHCHECK"]
    assert json.loads(healthcheck_line.partition(" CMD ")[2]) == ["python", "-m", "inferd.healthcheck"]
    assert callable(healthcheck.main)
    (cmd,) = image["CMD"]
    command = json.loads(cmd)
    assert command[:2] == ["inferd", "serve"]
    (workdir,) = image["WORKDIR"]
    config = Path(workdir) / build_parser().parse_args(command[1:]).config
    assert config.parent == IMAGE_SERVICE
    for container, pod in ((CONTAINER, POD["spec"]), (RUNTIME_CONTAINER, RUNTIME["spec"])):
        context = {**pod.get("securityContext", {}), **container["securityContext"]}
        assert context["runAsUser"] == int(uid) and context.get("runAsGroup", int(gid)) == int(gid)
        assert port_of(serve_args(container).address) == int(expose)
        assert int(expose) in {port["containerPort"] for port in container["ports"]}
        # The HEALTHCHECK asks grpc.health.v1 for service "" on INFERD_ADDRESS: so do the probes.
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": int(expose), "service": ""}, probe
