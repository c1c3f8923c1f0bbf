"""deploy/k8s/postgres.yaml, the CloudNativePG Cluster, checked structurally: no CRD schema is
vendored (kubernetes-validate knows only Kubernetes' own kinds), so this names the fields the
operator reads and the values the service relies on — three instances on three nodes, a
synchronous standby that must hold every acknowledged write, backups with a WAL archive — and
that every license-svc process connects to the Cluster's read-write Service."""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import conninfo_to_dict

from tests.unit.test_deploy import DEPLOY, RESOURCES, documents, of_kind

CNPG = "postgresql.cnpg.io/v1"
# The Cluster spec fields used here (CloudNativePG 1.25 API); a misspelt one would be ignored
# by the operator, so none other is accepted.
CLUSTER_FIELDS = {
    "instances", "imageName", "primaryUpdateStrategy", "postgresql", "bootstrap", "managed",
    "storage", "walStorage", "affinity", "resources", "backup",
}  # fmt: skip
SERVICE_HOST = "license-svc-db-rw"
STANDBYS = "database-url-service-standbys"


def cluster() -> dict[str, Any]:
    found: dict[str, Any] = of_kind("Cluster")["license-svc-db"]
    return found


def test_the_database_is_a_cloudnativepg_cluster_of_three_instances_on_three_nodes() -> None:
    assert cluster()["apiVersion"] == CNPG
    spec = cluster()["spec"]
    assert set(spec) <= CLUSTER_FIELDS
    assert spec["instances"] == 3
    assert spec["affinity"]["enablePodAntiAffinity"] is True
    assert spec["affinity"]["podAntiAffinityType"] == "required"
    assert ":" in spec["imageName"] and not spec["imageName"].endswith(":latest")


def test_a_commit_is_acknowledged_only_once_a_standby_holds_it() -> None:
    synchronous = cluster()["spec"]["postgresql"]["synchronous"]
    assert synchronous["method"] in ("any", "first")
    assert synchronous["number"] >= 1
    assert synchronous["dataDurability"] == "required"


def test_the_wal_is_archived_and_a_base_backup_is_taken_every_day() -> None:
    backup = cluster()["spec"]["backup"]
    store = backup["barmanObjectStore"]
    assert store["destinationPath"].startswith("s3://")
    assert {"accessKeyId", "secretAccessKey"} <= set(store["s3Credentials"])
    assert "wal" in store and backup["retentionPolicy"]
    scheduled = of_kind("ScheduledBackup")["license-svc-db-daily"]
    assert scheduled["apiVersion"] == CNPG
    assert scheduled["spec"]["cluster"]["name"] == "license-svc-db"
    assert len(scheduled["spec"]["schedule"].split()) == 6  # the operator's cron has seconds


def test_the_cluster_makes_the_database_and_the_three_roles_from_example_secrets() -> None:
    spec = cluster()["spec"]
    initdb = spec["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == ("license_svc", "license_svc_owner")
    secrets = {initdb["secret"]["name"]}
    roles = {role["name"]: role for role in spec["managed"]["roles"]}
    assert set(roles) == {"license_svc_service", "license_svc_readonly"}
    secrets |= {role["passwordSecret"]["name"] for role in roles.values()}
    store = spec["backup"]["barmanObjectStore"]["s3Credentials"]
    secrets |= {ref["name"] for ref in store.values()}
    examples = of_kind("Secret")
    assert secrets <= set(examples)
    owners = {"license_svc_owner": initdb["secret"]["name"]}
    owners |= {role: roles[role]["passwordSecret"]["name"] for role in roles}
    for role, name in owners.items():
        assert examples[name]["stringData"]["username"] == role


def test_every_process_connects_to_the_read_write_service_and_only_to_a_writable_server() -> None:
    urls = {
        key: value
        for key, value in of_kind("Secret")["license-svc"]["stringData"].items()
        if key.startswith("database-url-") and key != STANDBYS
    }
    assert len(urls) == 3
    for url in urls.values():
        params = conninfo_to_dict(url)
        assert params["host"] == SERVICE_HOST
        assert params["target_session_attrs"] == "read-write"


def test_the_servers_read_views_from_the_clusters_standbys_as_the_service_role() -> None:
    server = of_kind("Deployment")["license-svc-server"]["spec"]["template"]["spec"]
    env = {item["name"]: item for item in server["containers"][0]["env"]}
    ref = env["LICENSE_SVC_READ_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "license-svc", "key": STANDBYS}
    params = conninfo_to_dict(of_kind("Secret")["license-svc"]["stringData"][STANDBYS])
    assert params["host"] == "license-svc-db-ro"
    assert params["user"] == "license_svc_service"


def test_the_cluster_lives_in_its_own_manifest() -> None:
    kinds = {doc["kind"] for doc in documents(DEPLOY / "k8s" / "postgres.yaml")}
    assert kinds == {"Cluster", "ScheduledBackup"}
    assert all(r["apiVersion"] == CNPG for r in RESOURCES if r["kind"] in kinds)
