"""deploy/ checked offline: every Kubernetes manifest validates against the API schemas
(`kubernetes-validate`, strict), every role gets what it needs, and the compose file has the
production shape (PostgreSQL, two server replicas, a worker, a sweeper)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support import REPO

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.33.0"  # the oldest Kubernetes the manifests are meant for
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"fiscobridge/license-svc:{VERSION}"
HEALTH_PORT = 8081
ROLES = {"server": "serve", "projections": "project", "sweeper": "expire"}
EVERY_ROLE = {**ROLES, "dashboard": "dashboard", "webhooks": "webhooks"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


MANIFESTS = sorted(DEPLOY.glob("k8s/**/*.yaml"))
RESOURCES = [doc for path in MANIFESTS for doc in documents(path)]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in RESOURCES if doc["kind"] == kind}


def deployment(role: str) -> dict[str, Any]:
    return of_kind("Deployment")[f"license-svc-{role}"]


def container(role: str) -> dict[str, Any]:
    containers = deployment(role)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def env(role: str) -> dict[str, Any]:
    return {item["name"]: item for item in container(role).get("env", [])}


# Custom resources (CloudNativePG's) have no schema in kubernetes-validate: no CRD schema is
# vendored here, so `test_deploy_database.py` checks them structurally instead.
CUSTOM_GROUPS = ("postgresql.cnpg.io/",)
KUBERNETES_RESOURCES = [r for r in RESOURCES if not r["apiVersion"].startswith(CUSTOM_GROUPS)]


@pytest.mark.parametrize(
    "resource", KUBERNETES_RESOURCES, ids=lambda r: f"{r['kind']}/{r['metadata']['name']}"
)
def test_every_manifest_validates_against_the_kubernetes_schemas(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_the_validation_rejects_what_kubernetes_would() -> None:
    broken = yaml.safe_load(yaml.safe_dump(deployment("server")))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_every_role_runs_the_pinned_image_with_its_command(role: str) -> None:
    assert container(role)["image"] == IMAGE
    assert container(role)["args"] == [EVERY_ROLE[role]]


# Least privilege: which database role's URL and which secret files each role is given.
NEEDS = {
    "server": ("database-url-service", {"pepper", "tokens.json"}),
    "projections": ("database-url-service", set()),
    "sweeper": ("database-url-service", set()),
    "dashboard": ("database-url-readonly", {"tokens.json"}),
    # The webhooks process unseals the endpoints' secrets with a key derived from the pepper.
    "webhooks": ("database-url-service", {"pepper", "tokens.json"}),
}
FILE_SETTINGS = {"pepper": "LICENSE_SVC_PEPPER_FILE", "tokens.json": "LICENSE_SVC_TOKENS_FILE"}


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_every_role_gets_only_its_database_role_and_the_secret_files_it_needs(role: str) -> None:
    settings = env(role)
    url_key, files = NEEDS[role]
    assert settings["LICENSE_SVC_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "license-svc",
        "key": url_key,
    }
    assert {FILE_SETTINGS[f] for f in files} == set(FILE_SETTINGS.values()) & set(settings)
    mounts = {m["mountPath"]: m["name"] for m in container(role)["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment(role)["spec"]["template"]["spec"]["volumes"]}
    mounted = {
        item["key"]
        for name in mounts.values()
        if volumes[name].get("secret", {}).get("secretName") == "license-svc"
        for item in volumes[name]["secret"]["items"]
    }
    assert mounted == files
    for key in files:
        path = Path(settings[FILE_SETTINGS[key]]["value"])
        secret = volumes[mounts[str(path.parent)]]["secret"]
        assert {"key": key, "path": path.name} in secret["items"]
    examples = {s["metadata"]["name"]: s for s in of_kind("Secret").values()}
    assert {
        "database-url-owner",
        "database-url-service",
        "database-url-readonly",
        "pepper",
        "tokens.json",
    } <= set(examples["license-svc"]["stringData"])


def test_the_servers_metrics_read_as_the_read_only_role() -> None:
    url = env("server")["LICENSE_SVC_METRICS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert url == {"name": "license-svc", "key": "database-url-readonly"}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    settings = compose["services"]["server"]["environment"]
    assert settings["LICENSE_SVC_METRICS_DATABASE_URL"].startswith(
        "postgresql://license_svc_readonly:"
    )


def test_a_migrate_job_makes_the_schema_as_the_owner_and_grants_the_other_roles() -> None:
    job = of_kind("Job")["license-svc-migrate"]["spec"]["template"]["spec"]
    (spec,) = job["containers"]
    assert spec["image"] == IMAGE
    assert spec["args"][0] == "migrate"
    assert "--grant-service" in spec["args"] and "--grant-readonly" in spec["args"]
    settings = {item["name"]: item for item in spec["env"]}
    assert settings["LICENSE_SVC_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "license-svc",
        "key": "database-url-owner",
    }
    assert not set(FILE_SETTINGS.values()) & set(settings)  # no pepper, no tokens


def test_only_the_servers_get_the_signing_keys_from_a_secret_of_their_own() -> None:
    for role in EVERY_ROLE:
        names = set(env(role))
        has = {"LICENSE_SVC_SIGNING_KEY_FILE", "LICENSE_SVC_RETIRED_SIGNING_KEYS"} <= names
        assert has == (role == "server"), role
    settings = env("server")
    mounts = {m["mountPath"]: m["name"] for m in container("server")["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment("server")["spec"]["template"]["spec"]["volumes"]}
    for setting in ("LICENSE_SVC_SIGNING_KEY_FILE", "LICENSE_SVC_RETIRED_SIGNING_KEYS"):
        path = Path(settings[setting]["value"])
        secret = volumes[mounts[str(path.parent)]]["secret"]
        assert secret["secretName"] == "license-svc-signing"
        assert {"key": path.name, "path": path.name} in secret["items"]
    assert "license-svc-signing" in {s["metadata"]["name"] for s in of_kind("Secret").values()}


def test_the_servers_serve_tls_from_a_tls_secret() -> None:
    settings = env("server")
    volumes = {v["name"]: v for v in deployment("server")["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container("server")["volumeMounts"]}
    for setting in ("LICENSE_SVC_TLS_CERT", "LICENSE_SVC_TLS_KEY"):
        path = Path(settings[setting]["value"])
        secret_name = volumes[mounts[str(path.parent)]]["secret"]["secretName"]
        assert of_kind("Secret")[secret_name]["type"] == "kubernetes.io/tls"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_is_probed_on_its_plaintext_health_port_and_requests_resources(
    role: str,
) -> None:
    spec = container(role)
    assert env(role)["LICENSE_SVC_HEALTH_LISTEN"]["value"] == f"0.0.0.0:{HEALTH_PORT}"
    for probe in ("startupProbe", "readinessProbe"):
        assert spec[probe]["grpc"]["port"] == HEALTH_PORT  # never the TLS port
    assert spec["livenessProbe"]  # present; it does not restart pods for a database outage
    assert {"cpu", "memory"} <= set(spec["resources"]["requests"])
    assert "memory" in spec["resources"]["limits"]
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment(role)["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


def test_the_servers_have_a_disruption_budget_an_autoscaler_and_a_service() -> None:
    labels = deployment("server")["spec"]["template"]["metadata"]["labels"]
    budget = of_kind("PodDisruptionBudget")["license-svc-server"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    scaler = of_kind("HorizontalPodAutoscaler")["license-svc-server"]["spec"]
    assert scaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "license-svc-server",
    }
    assert 2 <= scaler["minReplicas"] < scaler["maxReplicas"]
    service = of_kind("Service")["license-svc"]["spec"]
    assert service["selector"].items() <= labels.items()
    metrics = {p["name"]: p["containerPort"] for p in container("server")["ports"]}["metrics"]
    assert env("server")["LICENSE_SVC_METRICS_LISTEN"]["value"] == f"0.0.0.0:{metrics}"
    grace = float(env("server")["LICENSE_SVC_GRACE_SECONDS"]["value"])
    assert deployment("server")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace


def test_the_dashboard_is_probed_on_its_sign_in_form_and_has_a_service() -> None:
    spec = container("dashboard")
    port = {p["name"]: p["containerPort"] for p in spec["ports"]}["http"]
    assert env("dashboard")["LICENSE_SVC_DASHBOARD_LISTEN"]["value"] == f"0.0.0.0:{port}"
    assert spec["readinessProbe"]["httpGet"]["path"] == "/login"
    assert {"cpu", "memory"} <= set(spec["resources"]["requests"])
    labels = deployment("dashboard")["spec"]["template"]["metadata"]["labels"]
    assert of_kind("Service")["license-svc-dashboard"]["spec"]["selector"].items() <= labels.items()


def test_the_compose_file_runs_postgres_two_servers_a_worker_and_a_sweeper() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", *ROLES}
    migrate = services["migrate"]
    assert migrate["command"][0] == "migrate"
    assert migrate["environment"]["LICENSE_SVC_DATABASE_URL"].startswith(
        "postgresql://license_svc_owner:"
    )
    assert re.fullmatch(r"postgres:\d+\.\d+[\w.-]*", services["postgres"]["image"])
    assert "healthcheck" in services["postgres"]
    assert services["server"]["deploy"]["replicas"] == 2
    for role, command in ROLES.items():
        service = services[role]
        assert service["image"] == IMAGE
        assert service["command"] == [command]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        settings = service["environment"]
        assert settings["LICENSE_SVC_DATABASE_URL"].startswith("postgresql://license_svc_service:")
        assert "@postgres:5432/" in settings["LICENSE_SVC_DATABASE_URL"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        if role == "server":
            signing = {"signing_key", "retired_signing_keys"}
            assert set(service["secrets"]) == {"pepper", "tokens", *signing}
            assert settings["LICENSE_SVC_PEPPER_FILE"] == "/run/secrets/pepper"
            assert settings["LICENSE_SVC_TOKENS_FILE"] == "/run/secrets/tokens"
        else:  # the worker and the sweeper hold neither
            assert not service.get("secrets") and "LICENSE_SVC_PEPPER_FILE" not in settings
        assert service["healthcheck"]["test"][:4] == [
            "CMD",
            "python",
            "-m",
            "license_svc.entrypoints.probe",
        ]
    assert services["server"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert set(compose["secrets"]) == {"pepper", "tokens", "signing_key", "retired_signing_keys"}
    server = services["server"]["environment"]
    assert server["LICENSE_SVC_SIGNING_KEY_FILE"] == "/run/secrets/signing_key"
    assert server["LICENSE_SVC_RETIRED_SIGNING_KEYS"] == "/run/secrets/retired_signing_keys"


def test_the_image_is_pinned_and_its_runtime_stage_holds_only_the_installed_package() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", b) for b in bases)
    runtime = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "COPY src" not in runtime and "COPY --from=build /wheels" in runtime
    assert re.search(r"^USER \d+", runtime, re.MULTILINE)  # not root
