"""infra/ checked without a container engine or a cluster: every YAML parses, every image is pinned, and
the services, ports and environment variables of infra/compose.yaml and infra/kuberay/raycluster.yaml
agree with each other and with what lfsd reads.

The environment variables lfsd reads are taken from the code itself (an AST scan of components/ and
flows/ for os.environ.get / os.getenv / os.environ[...] / `in os.environ`, constants resolved), not from
a list kept here; the few read-but-not-deployed ones are listed below with the reason.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.util
import os
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
COMPOSE = INFRA / "compose.yaml"
KUBERAY = INFRA / "kuberay" / "raycluster.yaml"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
ENV_EXAMPLE = INFRA / "env.example"
CODE_DIRS = ("components", "flows")

# Read by lfsd's code, deliberately not set by a deployment.
NOT_DEPLOYED = {
    "LFSD_RAY_FAIL_AT_STEP": "test-only fault injection (a failing Ray worker)",
    "LFSD_DIE_AT": "test-only fault injection (SIGKILL at a named point of onboarding)",
    "LFSD_PAUSE_AT": "test-only fault injection (hold the process at a named point, for a signal there)",
    "LFSD_RAY_LOG_TO_DRIVER": "debugging switch, off by default",
    "RAY_AUTH_TOKEN_PATH": "the file form of RAY_AUTH_TOKEN, which the deployments set instead",
}
# The package that reads a variable lfsd's own code does not (MLFLOW_S3_ENDPOINT_URL, PREFECT_API_URL, AWS_*).
LIBRARY_BY_PREFIX = {
    "MLFLOW_": "mlflow",
    "PREFECT_": "prefect",
    "AWS_": "botocore",
    "RAY_": "ray",
    "DVC_": "dvc",
    "HF_": "huggingface_hub",
    "TRANSFORMERS_": "transformers",
    "GX_": "great_expectations",
}
# The compose services that are lfsd's own processes (the pipeline and the Ray nodes it trains on).
LFSD_SERVICES = ("lfsd", "ray-head", "ray-worker")


# ------------------------------------------------------------------------------ what lfsd's code reads


def _strings(node: ast.AST) -> tuple[str, ...] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if (
        isinstance(node, (ast.Tuple, ast.List))
        and node.elts
        and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)
    ):
        return tuple(e.value for e in node.elts)
    return None


def _module_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@functools.cache
def _local_constants(path: Path) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[Path, str]]]:
    """(module-level NAME = "str" / ("a", "b") constants, names imported with `from x import NAME`)."""
    consts: dict[str, tuple[str, ...]] = {}
    imports: dict[str, tuple[Path, str]] = {}
    for node in _parse(path).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            src = _module_file(node.module)
            if src is not None:
                for alias in node.names:
                    imports[alias.asname or alias.name] = (src, alias.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            value = _strings(node.value)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if value is not None and isinstance(t, ast.Name):
                    consts[t.id] = value
    return consts, imports


def _constant(path: Path, name: str, depth: int = 0) -> tuple[str, ...] | None:
    """A module-level string constant, following `from x import NAME` re-exports (import cycles are fine)."""
    consts, imports = _local_constants(path)
    if name in consts:
        return consts[name]
    if name in imports and depth < 8:
        src, original = imports[name]
        return _constant(src, original, depth + 1)
    return None


def _is_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ) or (isinstance(node, ast.Name) and node.id == "environ")


def _env_reads(path: Path) -> tuple[set[str], list[str]]:
    """(names read, expressions that could not be resolved to a name) in one module."""
    tree = _parse(path)
    consts: dict[str, tuple[str, ...]] = {}  # comprehension variables over a constant
    for comp in ast.walk(tree):  # `any(v in os.environ for v in AUTH_ENV)`: v ranges over a constant
        if isinstance(comp, (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)):
            for gen in comp.generators:
                values = _strings(gen.iter) or (
                    _constant(path, gen.iter.id) if isinstance(gen.iter, ast.Name) else None
                )
                if isinstance(gen.target, ast.Name) and values:
                    consts[gen.target.id] = values
    keys: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if node.args and (
                (isinstance(f, ast.Attribute) and f.attr == "get" and _is_environ(f.value))
                or (
                    isinstance(f, ast.Attribute)
                    and f.attr == "getenv"
                    and isinstance(f.value, ast.Name)
                    and f.value.id == "os"
                )
                or (isinstance(f, ast.Name) and f.id == "getenv")
            ):
                keys.append(node.args[0])
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            keys.append(node.slice)
        elif (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In)
            and _is_environ(node.comparators[0])
        ):
            keys.append(node.left)
    names, unresolved = set(), []
    for key in keys:
        values = _strings(key) or (
            (consts.get(key.id) or _constant(path, key.id)) if isinstance(key, ast.Name) else None
        )
        if values:
            names.update(values)
        else:
            unresolved.append(f"{path.relative_to(REPO)}:{key.lineno}: {ast.unparse(key)}")
    return names, unresolved


@functools.cache
def code_env_reads() -> dict[str, list[str]]:
    """Every environment variable components/ and flows/ read -> the modules that read it."""
    found: dict[str, list[str]] = {}
    for d in CODE_DIRS:
        for path in sorted((REPO / d).rglob("*.py")):
            for name in _env_reads(path)[0]:
                found.setdefault(name, []).append(str(path.relative_to(REPO)))
    return found


@functools.cache
def _library_reads(name: str) -> bool:
    """Whether the package that owns `name`'s prefix mentions it in its source."""
    package = next((p for prefix, p in LIBRARY_BY_PREFIX.items() if name.startswith(prefix)), None)
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return False
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    for root in spec.submodule_search_locations:
        for p in Path(root).rglob("*.py"):
            try:
                if pattern.search(p.read_text(errors="ignore")):
                    return True
            except OSError:
                continue
    return False


@functools.cache
def _script_reads(name: str) -> bool:
    """Whether one of infra's own scripts reads it ($NAME / ${NAME...})."""
    pattern = re.compile(rf"\$\{{?{re.escape(name)}\b")
    return any(pattern.search(p.read_text()) for p in INFRA.rglob("*.sh"))


def _unread(names) -> list[str]:
    return sorted(n for n in names if n not in code_env_reads() and not _script_reads(n) and not _library_reads(n))


# ------------------------------------------------------------------------------ the files


def _env_example() -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line.strip() and not line.startswith("#")
    )


def _interpolate(text: str) -> str:
    """docker compose's ${VAR}, ${VAR:-default}, ${VAR:?message}, with infra/env.example's values."""
    example = _env_example()

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in example:
            return example[name]
        return arg if op in (":-", "-") else f"<{name}>"

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", sub, text)


@functools.cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def env_of(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def command_of(service: str) -> list[str]:
    cmd = services()[service].get("command") or []
    return [_interpolate(c) for c in (cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd])]


def _flag(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def listen_ports(service: str) -> set[int]:
    """Container ports the service declares: `expose` plus the container side of `ports`."""
    spec = services()[service]
    ports = {int(str(p)) for p in spec.get("expose", [])}
    for p in spec.get("ports", []):
        ports.add(int(str(p).split(":")[-1].split("/")[0]))
    return ports


def _all_strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _all_strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _all_strings(v)]
    return []


def _yaml_docs() -> list[tuple[Path, object]]:
    return [(p, doc) for p in sorted(INFRA.rglob("*.y*ml")) for doc in yaml.safe_load_all(p.read_text())]


def _images(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["image"]] if isinstance(node.get("image"), str) else []
        return found + [i for v in node.values() for i in _images(v)]
    if isinstance(node, list):
        return [i for v in node for i in _images(v)]
    return []


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.split(":", 1)[1]
    return tag != "latest" and re.search(r"\d+\.\d+|\d{4}-\d{2}-\d{2}", tag) is not None  # a version or a release date


def _constraint(name: str) -> str | None:
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line.split("==", 1)[1]
    return None


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


# ------------------------------------------------------------------------------ tests: all of infra/


def test_every_yaml_under_infra_parses():
    docs = _yaml_docs()
    assert {p for p, _ in docs} >= {COMPOSE, KUBERAY}
    for path, doc in docs:
        assert isinstance(doc, dict) and doc, f"{path.relative_to(REPO)}: an empty or non-mapping document"


def test_every_image_is_pinned():
    images = [(p, i) for p, doc in _yaml_docs() for i in _images(doc)]
    images += [
        (DOCKERFILE, line.split()[1])
        for line in DOCKERFILE.read_text().splitlines()
        if line.upper().startswith("FROM ")
    ]
    assert len(images) > 5
    loose = [f"{p.relative_to(REPO)}: {i}" for p, i in images if not _pinned(i)]
    assert not loose, f"images without an exact tag or digest: {loose}"
    # lfsd's own image is tagged with the project's version; its Python is the project's.
    version = _project()["version"]
    ours = {i for _, i in images if i.split(":")[0] == "lfsd"}
    assert ours == {f"lfsd:{version}"}, ours
    python = next(i for p, i in images if p == DOCKERFILE)
    major_minor = re.search(r"<\s*3\.(\d+)|==\s*3\.(\d+)|>=\s*3\.(\d+)", _project()["requires-python"])
    assert python.startswith(f"python:3.{next(g for g in major_minor.groups() if g)}."), python


def test_dockerfile_installs_only_pinned_packages():
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (install,) = [line for line in text.splitlines() if "pip install" in line]
    assert "-c constraints.txt" in install
    names = [
        a
        for a in install.split("pip install", 1)[1].split("&&")[0].split()
        if not a.startswith("-") and a not in (".", "constraints.txt")
    ]
    assert names, install
    for name in names:
        assert _constraint(name), f"{name} is installed by the Dockerfile but not pinned in constraints.txt"


# ------------------------------------------------------------------------------ tests: what lfsd reads


def test_the_code_scan_sees_what_lfsd_reads():
    reads = code_env_reads()
    assert len(reads) >= 4 and any(n.startswith("LFSD_") for n in reads), reads
    stale = sorted(set(NOT_DEPLOYED) - set(reads))
    assert not stale, f"NOT_DEPLOYED names that the code no longer reads (drop them): {stale}"


def _required_names() -> set[str]:
    return set(code_env_reads()) - set(NOT_DEPLOYED)


def test_compose_lfsd_sets_every_variable_lfsd_reads_and_only_read_ones():
    env = env_of("lfsd")
    missing = sorted(_required_names() - set(env))
    assert not missing, "lfsd reads these but infra/compose.yaml does not set them for the lfsd service: " + ", ".join(
        f"{n} ({', '.join(code_env_reads()[n])})" for n in missing
    )
    for service in LFSD_SERVICES:
        unread = _unread(env_of(service))
        assert not unread, f"{service}: set but read by neither lfsd, its libraries nor infra's scripts: {unread}"


def test_kuberay_head_sets_every_variable_lfsd_reads():
    head = _raycluster()["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in head["env"]}
    assert not sorted(_required_names() - names), sorted(_required_names() - names)
    assert not _unread(names), _unread(names)
    # The same names, with the same meaning, as the compose deployment.
    assert names == set(env_of("lfsd")) - {"DVC_REMOTE_URL"}, names ^ set(env_of("lfsd"))


# ------------------------------------------------------------------------------ tests: compose


def test_compose_has_every_service_and_only_known_files():
    assert {"postgres", "minio", "mlflow", "prefect", "ray-head", "ray-worker", "lfsd"} <= set(services())
    for name, spec in services().items():
        if "build" in spec:
            context = (COMPOSE.parent / spec["build"]["context"]).resolve()
            assert (context / spec["build"]["dockerfile"]).is_file(), name
            assert context == REPO, name
        for dep in spec.get("depends_on", {}):
            assert dep in services(), f"{name} depends on unknown service {dep}"
    entrypoint = services()["lfsd"]["entrypoint"][0]
    script = REPO / Path(entrypoint).relative_to("/opt/lfsd")  # the Dockerfile's WORKDIR holds the repo
    assert "WORKDIR /opt/lfsd" in DOCKERFILE.read_text()
    assert script.is_file() and os.access(script, os.X_OK), script


def test_compose_ports_agree_with_commands_and_with_every_reference():
    names = set(services())
    for service in names:
        args = command_of(service)
        declared = [
            _flag(args, f)
            for f in ("--port", "--address", "--console-address", "--dashboard-port", "--ray-client-server-port")
        ]
        for value in filter(None, declared):
            host, _, port = value.rpartition(":")
            if port.isdigit() and host in ("", "0.0.0.0"):  # its own port (`ray-head:6379` is a target: below)
                assert int(port) in listen_ports(service), f"{service} listens on {port} but does not expose it"
    # Every host:port in any service's environment, command or health check that names a service.
    pattern = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(?:[^@/\s]*@)?([a-z][a-z0-9-]*):(\d+)")
    seen = 0
    for service, spec in services().items():
        for text in _all_strings({k: spec.get(k) for k in ("environment", "command", "healthcheck")}):
            for host, port in pattern.findall(_interpolate(text)):  # (env and command are interpolated already)
                if host in names:
                    seen += 1
                    assert int(port) in listen_ports(host), (
                        f"{service} points at {host}:{port}, which exposes {sorted(listen_ports(host))}"
                    )
    assert seen >= 6


def test_compose_lfsd_points_at_each_service_it_depends_on():
    env = env_of("lfsd")
    targets = {}
    for name, value in env.items():
        host = urlsplit(value if "://" in value else f"tcp://{value}").hostname
        if host in services():
            targets.setdefault(host, []).append(name)
    long_running = [
        d
        for d, cond in services()["lfsd"]["depends_on"].items()
        if cond.get("condition") != "service_completed_successfully"
    ]
    for dep in long_running:
        assert dep in targets, f"lfsd waits for {dep} but no variable points at it"
    assert "minio" in targets  # S3 (MLflow artifacts read directly, DVC remote endpoint)
    for pointers in targets.values():
        assert not _unread(pointers), pointers
    # Which variable points where: from the values, checked against the names lfsd and its libraries read.
    assert urlsplit(env["PREFECT_API_URL"]).path == "/api"
    head_port = _flag(command_of("ray-head"), "--port")
    assert env["RAY_ADDRESS"] == f"ray-head:{head_port}"
    assert _flag(command_of("ray-worker"), "--address") == env["RAY_ADDRESS"]


def test_compose_mlflow_uses_postgres_and_the_s3_bucket():
    pg, mlflow, bucket_job = env_of("postgres"), env_of("mlflow"), env_of("create-bucket")
    backend = urlsplit(mlflow["MLFLOW_BACKEND_STORE_URI"])
    assert backend.scheme == "postgresql+psycopg2"  # the driver the image installs (psycopg2-binary)
    assert _constraint("psycopg2-binary") and _constraint("boto3")
    assert (backend.hostname, backend.username, backend.path.lstrip("/")) == (
        "postgres",
        pg["POSTGRES_USER"],
        pg["POSTGRES_DB"],
    )
    assert backend.password == pg["POSTGRES_PASSWORD"]
    artifacts = urlsplit(_flag(command_of("mlflow"), "--artifacts-destination"))
    assert artifacts.scheme == "s3" and artifacts.netloc == bucket_job["S3_BUCKET"]
    assert urlsplit(env_of("lfsd")["DVC_REMOTE_URL"]).netloc == bucket_job["S3_BUCKET"]
    # lfsd and MLflow reach S3 as lfsd's own user, which create-bucket makes; only create-bucket has the root login
    minio = env_of("minio")
    root = urlsplit(bucket_job["MC_HOST_local"])
    assert (root.username, root.password) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    assert (root.hostname, root.port) == ("minio", 9000) and root.port in listen_ports("minio")
    for service in ("mlflow", "lfsd"):
        env = env_of(service)
        assert env["AWS_ACCESS_KEY_ID"] == bucket_job["LFSD_S3_ACCESS_KEY"] != minio["MINIO_ROOT_USER"], service
        assert env["AWS_SECRET_ACCESS_KEY"] == bucket_job["LFSD_S3_SECRET_KEY"], service
        assert minio["MINIO_ROOT_PASSWORD"] not in env.values(), service
    assert mlflow["MLFLOW_S3_ENDPOINT_URL"] == env_of("lfsd")["MLFLOW_S3_ENDPOINT_URL"] == bucket_job["S3_ENDPOINT_URL"]
    assert mlflow["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_compose_mlflow_and_prefect_ask_lfsd_to_log_in_and_no_secret_is_an_argument():
    """Issue 30 §7: MLflow runs its basic-auth app and lfsd logs in as the user mlflow-users makes; the Prefect
    server requires the login lfsd sends; no secret of infra/.env stands in any command (a process list shows
    commands to every local user), and MLflow's backend URI, which holds the database password, is no argument."""
    mlflow, lfsd, users = env_of("mlflow"), env_of("lfsd"), env_of("mlflow-users")
    assert _flag(command_of("mlflow"), "--app-name") == "basic-auth"
    ini = INFRA / "mlflow" / "basic_auth.ini"
    assert mlflow["MLFLOW_AUTH_CONFIG_PATH"] == f"/opt/lfsd/{ini.relative_to(REPO)}" and ini.is_file()
    assert mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"] and mlflow["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    assert "flask-wtf" in DOCKERFILE.read_text() and _constraint("flask-wtf")  # the basic-auth app needs it
    assert (lfsd["MLFLOW_TRACKING_USERNAME"], lfsd["MLFLOW_TRACKING_PASSWORD"]) == (
        users["LFSD_MLFLOW_USER"],
        users["LFSD_MLFLOW_PASSWORD"],
    )
    assert users["MLFLOW_ADMIN_PASSWORD"] == mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"] != lfsd["MLFLOW_TRACKING_PASSWORD"]
    assert services()["lfsd"]["depends_on"]["mlflow-users"] == {"condition": "service_completed_successfully"}
    assert env_of("prefect")["PREFECT_SERVER_API_AUTH_STRING"] == lfsd["PREFECT_API_AUTH_STRING"]
    assert urlsplit(lfsd["MLFLOW_TRACKING_URI"]).password is None  # credentials never inside a URI
    secrets = {v for k, v in _env_example().items() if any(w in k for w in ("PASSWORD", "SECRET", "TOKEN", "AUTH"))}
    assert len(secrets) >= 7, secrets
    for name in services():
        for arg in command_of(name):
            assert not any(secret in arg for secret in secrets), (name, arg)
            assert not arg.startswith("--backend-store-uri"), name
    script = (INFRA / "mlflow" / "start-server.sh").read_text()
    assert "--backend-store-uri" not in script and "MLFLOW_BACKEND_STORE_URI" in script


def test_compose_mlflow_accepts_the_host_header_clients_send():
    """MLflow 3 rejects Host headers outside --allowed-hosts (default: localhost and private IPs)."""
    allowed = _flag(command_of("mlflow"), "--allowed-hosts").split(",")
    netloc = urlsplit(env_of("lfsd")["MLFLOW_TRACKING_URI"]).netloc
    assert any(fnmatch.fnmatch(netloc, a) if "*" in a else netloc == a for a in allowed), (netloc, allowed)


def test_compose_ray_nodes_share_auth_workspace_and_volume():
    envs = {s: env_of(s) for s in LFSD_SERVICES}
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "LFSD_WORKSPACE", "LFSD_STATE_DIR"):
        assert len({e.get(name) for e in envs.values()}) == 1, (name, {s: e.get(name) for s, e in envs.items()})
    mounts = {
        s: {str(v).split(":")[1] for v in services()[s]["volumes"] if str(v).startswith("workspace:")}
        for s in LFSD_SERVICES
    }
    (mount,) = set.union(*mounts.values())
    assert all(m == {mount} for m in mounts.values()), mounts
    for name in ("LFSD_WORKSPACE", "LFSD_STATE_DIR"):  # checkpoints are plain paths on every node
        assert envs["lfsd"][name].startswith(mount.rstrip("/") + "/"), name
    assert "workspace" in compose()["volumes"]


def test_env_example_names_every_variable_compose_requires():
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", COMPOSE.read_text()))
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert required and required <= example, required - example
    assert ".env" in (INFRA / ".gitignore").read_text().split()


# ------------------------------------------------------------------------------ tests: KubeRay


def _raycluster() -> dict:
    (cluster,) = [d for d in yaml.safe_load_all(KUBERAY.read_text()) if d.get("kind") == "RayCluster"]
    return cluster


def test_kuberay_cluster_matches_the_pins_and_shares_one_volume():
    docs = list(yaml.safe_load_all(KUBERAY.read_text()))
    cluster = _raycluster()
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["rayVersion"] == _constraint("ray"), "rayVersion must be the ray the image installs"
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    workers = cluster["spec"]["workerGroupSpecs"]
    assert workers and len({w["groupName"] for w in workers}) == len(workers)
    for w in workers:
        assert w["minReplicas"] <= w["replicas"] <= w["maxReplicas"], w["groupName"]

    container = head["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    address = urlsplit(f"tcp://{env['RAY_ADDRESS']}")
    assert address.hostname == "127.0.0.1" and address.port == ports["gcs-server"]  # the driver runs on the head

    claims = {
        d["metadata"]["name"]
        for d in docs
        if d.get("kind") == "PersistentVolumeClaim" and "ReadWriteMany" in d["spec"]["accessModes"]
    }
    pods = [head] + [w["template"]["spec"] for w in workers]
    mounts = set()
    for pod in pods:
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        for c in pod["containers"]:
            for m in c["volumeMounts"]:
                assert volumes[m["name"]] in claims, m
                mounts.add(m["mountPath"])
            cenv = {e["name"]: e for e in c["env"]}
            for name in ("LFSD_WORKSPACE", "LFSD_STATE_DIR", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
                assert cenv[name] == {e["name"]: e for e in container["env"]}[name], (c["name"], name)
    (mount,) = mounts
    assert env["LFSD_WORKSPACE"].startswith(mount.rstrip("/") + "/")
    # The secrets come from one Secret, never inline.
    for name in ("RAY_AUTH_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[name] is None, f"{name} must come from a secretKeyRef"


def test_kuberay_and_compose_agree_on_ports():
    ports = {
        p["containerPort"] for p in _raycluster()["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert ports == listen_ports("ray-head")
    env = {
        e["name"]: e.get("value")
        for e in _raycluster()["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    }
    lfsd = env_of("lfsd")
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "MLFLOW_S3_ENDPOINT_URL"):
        k8s, dc = urlsplit(env[name]), urlsplit(lfsd[name])
        assert (k8s.port, k8s.path) == (dc.port, dc.path), name
        assert k8s.hostname.split(".")[0] == dc.hostname, name  # <service>.<namespace>.svc...


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lfsd:0.1.0", True),
        ("postgres:17", False),
        ("minio/minio", False),
        ("x/y:latest", False),
        ("a@sha256:" + "0" * 64, True),
    ],
)
def test_pinned_rule(text, expected):
    assert _pinned(text) is expected


def test_pinned_rule_takes_release_dates():
    assert _pinned("minio/minio:RELEASE.2025-09-07T16-13-09Z")


RAYSERVICE = INFRA / "kuberay" / "rayservice.yaml"


def _rayservice() -> dict:
    (service,) = [d for d in yaml.safe_load_all(RAYSERVICE.read_text()) if d.get("kind") == "RayService"]
    return service


def test_kuberay_rayservice_imports_a_builder_of_lfsd_and_matches_the_cluster():
    """What KubeRay would refuse only on a cluster: an import_path that does not resolve, a Ray that is not
    the one the image installs, an image other than the training cluster's."""
    import importlib
    import inspect

    service = _rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    (application,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    module_name, _, attr = application["import_path"].partition(":")
    assert module_name.split(".")[0] == "components" and attr, application["import_path"]
    module = importlib.import_module(module_name)
    builder = getattr(module, attr, None)
    assert inspect.isfunction(builder), f"{application['import_path']} is not a function in components/"
    assert len(inspect.signature(builder).parameters) == 1, "a Ray Serve builder takes one argument (the args)"
    assert set(application["args"]) <= {"workspace"}, application["args"]

    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == _constraint("ray"), "rayVersion must be the ray the image installs"
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [w["template"]["spec"] for w in cluster["workerGroupSpecs"]]
    images = {c["image"] for pod in pods for c in pod["containers"]}
    raycluster = _raycluster()["spec"]
    training = [raycluster["headGroupSpec"]["template"]["spec"]]
    training += [w["template"]["spec"] for w in raycluster["workerGroupSpecs"]]
    assert images == {c["image"] for pod in training for c in pod["containers"]}, images
