"""The container files in docker/: the image and the compose services keep the project's
pins (pom.xml, pyproject.toml, the Makefile's Maven builds), publish nothing beyond
loopback, and point the application at the compose services. No Docker engine is needed:
the files are parsed, not built or run."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shlex
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import yaml

from connectors.registry import source_kind
from streamlake.config import LoadedConfig, load_config
from streamlake.config.pipeline import FilesSource, JdbcSource
from streamlake.config.settings import Settings
from streamlake.errors import StreamlakeError
from streamlake.paths import checkout_root

ROOT = checkout_root()
DOCKER = ROOT / "docker"
MAVEN = {"m": "http://maven.apache.org/POM/4.0.0"}
DEPENDENCIES = ("kafka", "aws", "postgres")
PASSWORD = "a-password-for-the-test"


# -- the files, parsed ---------------------------------------------------------------------


def pom_properties(path: Path) -> dict[str, str]:
    properties = ElementTree.parse(path).getroot().find("m:properties", MAVEN)
    assert properties is not None, f"{path} has no <properties>"
    return {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in properties}


def pyproject_dependencies() -> list[str]:
    """What the image installs: the dependencies and the extras spark, local, consume."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    extras = project["optional-dependencies"]
    dependencies: list[str] = project["dependencies"]
    return dependencies + [d for extra in ("spark", "local", "consume") for d in extras[extra]]


def pinned(requirement_name: str) -> str:
    """The version pyproject.toml pins ``name==version``."""
    pins = [
        dependency.partition("==")[2]
        for dependency in pyproject_dependencies()
        if dependency.startswith(f"{requirement_name}==")
    ]
    assert len(pins) == 1, f"pyproject.toml pins {requirement_name} {len(pins)} times"
    return pins[0]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int  # index of the FROM it follows; -1 before the first


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their backslash continuations joined; comments and blank lines
    (also those inside a continued instruction, as Docker drops them) left out."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


@dataclass(frozen=True)
class Copy:
    flags: dict[str, str]
    sources: list[str]
    destination: str


def parse_copy(arguments: str) -> Copy:
    words = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return Copy(flags, words[:-1], words[-1])


def pairs(words: list[str]) -> dict[str, str]:
    """``NAME=value`` words as a mapping (``NAME`` alone maps to "")."""
    found: dict[str, str] = {}
    for word in words:
        name, _, value = word.partition("=")
        found[name] = value
    return found


def assignments(arguments: str) -> dict[str, str]:
    """``ARG`` and ``ENV`` arguments (the ``NAME=value`` form)."""
    return pairs(shlex.split(arguments))


class Dockerfile:
    def __init__(self, path: Path) -> None:
        self.instructions = parse_dockerfile(path.read_text(encoding="utf-8"))
        self.global_args: dict[str, str] = {}
        for instruction in self.in_stage(-1):
            assert instruction.keyword == "ARG", "only ARG may come before the first FROM"
            self.global_args.update(assignments(instruction.arguments))
        self.stages: list[tuple[str, str]] = []  # (image, stage name)
        for instruction in self.all("FROM"):
            words = [w for w in instruction.arguments.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            self.stages.append((self.substitute(words[0]), name))

    def substitute(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.global_args[m[1] or m[2]], text)

    def in_stage(self, stage: int) -> list[Instruction]:
        return [i for i in self.instructions if i.stage == stage]

    def all(self, keyword: str, stage: int | None = None) -> list[Instruction]:
        return [
            i
            for i in self.instructions
            if i.keyword == keyword and (stage is None or i.stage == stage)
        ]

    @property
    def final(self) -> int:
        return len(self.stages) - 1

    def stage_named(self, name: str) -> int:
        names = [stage_name for _, stage_name in self.stages]
        assert name in names, f"no stage named {name!r} (stages: {names})"
        return names.index(name)

    def env(self, stage: int) -> dict[str, str]:
        found: dict[str, str] = {}
        for instruction in self.all("ENV", stage):
            found.update(assignments(instruction.arguments))
        return found

    def runs(self, stage: int) -> list[str]:
        return [i.arguments for i in self.all("RUN", stage)]

    def copies(self, stage: int | None = None) -> list[Copy]:
        return [parse_copy(i.arguments) for i in self.all("COPY", stage)]


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKER / "Dockerfile")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    return data


def service(compose: Mapping[str, Any], name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services[name]


def environment(definition: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, from the mapping or the list form."""
    raw = definition.get("environment") or {}
    if isinstance(raw, list):
        raw = pairs([str(item) for item in raw])
    return {name: "" if value is None else str(value) for name, value in raw.items()}


COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?message}`` (and ``$$``)."""

    def value_of(match: re.Match[str]) -> str:
        name, operator, argument = match[1], match[2] or "", match[3] or ""
        given = environ.get(name)
        if operator.endswith("?") and not given:
            raise LookupError(f"compose refuses to start: {name}: {argument}")
        if operator.endswith("-") and not given:
            return argument
        return given or ""

    return COMPOSE_VARIABLE.sub(value_of, value.replace("$$", "\0")).replace("\0", "$")


@dataclass(frozen=True)
class Published:
    host_ip: str
    host_port: str
    container_port: str


def published_ports(definition: Mapping[str, Any]) -> list[Published]:
    found = []
    for entry in definition.get("ports", []):
        if isinstance(entry, dict):
            found.append(
                Published(
                    str(entry.get("host_ip", "")),
                    str(entry.get("published", "")),
                    str(entry["target"]),
                )
            )
            continue
        parts = str(entry).split("/")[0].split(":")
        parts = [""] * (3 - len(parts)) + parts
        found.append(Published(*parts))
    return found


def kafka_listeners(variable: str, compose: Mapping[str, Any]) -> dict[str, str]:
    """``NAME://host:port,...`` of the broker's environment, by listener name."""
    value = environment(service(compose, "kafka"))[variable]
    return dict(listener.split("://") for listener in value.split(","))


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- compose.yaml -------------------------------------------------------------------------


def test_compose_runs_the_application_beside_its_three_services(
    compose: dict[str, Any],
) -> None:
    assert "version" not in compose, "the Compose spec has no version key"
    assert set(compose["services"]) >= {"streamlake", *DEPENDENCIES}


def test_kafka_image_is_the_broker_version_pinned_in_the_pom(compose: dict[str, Any]) -> None:
    version = pom_properties(ROOT / "pom.xml")["kafka.broker.version"]
    assert service(compose, "kafka")["image"] == f"apache/kafka:{version}"


def test_every_published_port_binds_loopback_only(compose: dict[str, Any]) -> None:
    ports = {name: published_ports(definition) for name, definition in compose["services"].items()}
    assert all(ports[name] for name in DEPENDENCIES), "each service is reachable from the host"
    exposed = [(name, p) for name, found in ports.items() for p in found]
    assert [(name, p) for name, p in exposed if p.host_ip != "127.0.0.1"] == []


def test_host_ports_are_the_local_stacks(compose: dict[str, Any]) -> None:
    """Tools set up for `streamlake local up` on the host reach the containers alike."""
    local_yaml = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text(encoding="utf-8"))
    local = Settings.model_validate(local_yaml).local
    expected = {"kafka": local.kafka_port, "aws": local.aws_port, "postgres": local.postgres_port}
    for name, port in expected.items():
        assert str(port) in {p.host_port for p in published_ports(service(compose, name))}, name


def test_application_starts_once_its_services_are_healthy(compose: dict[str, Any]) -> None:
    depends_on = service(compose, "streamlake")["depends_on"]
    assert {name: depends_on[name]["condition"] for name in DEPENDENCIES} == dict.fromkeys(
        DEPENDENCIES, "service_healthy"
    )
    for name in DEPENDENCIES:
        test = service(compose, name)["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_application_is_built_from_the_repository_root(compose: dict[str, Any]) -> None:
    build = service(compose, "streamlake")["build"]
    assert (DOCKER / build["context"]).resolve() == ROOT.resolve()
    assert (ROOT / build["dockerfile"]).resolve() == (DOCKER / "Dockerfile").resolve()


def test_kafka_broker_serves_containers_and_host_and_creates_no_topic(
    compose: dict[str, Any],
) -> None:
    env = environment(service(compose, "kafka"))
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    advertised = kafka_listeners("KAFKA_ADVERTISED_LISTENERS", compose)
    bound = {
        name: address.rpartition(":")[2]
        for name, address in kafka_listeners("KAFKA_LISTENERS", compose).items()
    }
    assert advertised["PLAINTEXT"] == "kafka:9092"
    # The host listener is advertised at the address compose publishes it on.
    host, _, port = advertised["HOST"].rpartition(":")
    assert Published(host, port, bound["HOST"]) in published_ports(service(compose, "kafka"))
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in bound
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    replication = {name: value for name, value in env.items() if "REPLICATION_FACTOR" in name}
    assert replication and set(replication.values()) == {"1"}
    # kafka-storage format takes a base64 (URL-safe) UUID: 22 characters, 16 bytes.
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    health = service(compose, "kafka")["healthcheck"]["test"]
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in health
    assert f"localhost:{bound['PLAINTEXT']}" in health


def test_aws_server_image_satisfies_the_projects_moto_requirement(
    compose: dict[str, Any],
) -> None:
    image, _, tag = service(compose, "aws")["image"].partition(":")
    assert image == "motoserver/moto"
    (requirement,) = [d for d in pyproject_dependencies() if d.startswith("moto[")]
    minimum = requirement.partition(">=")[2]
    assert minimum and version_tuple(tag) >= version_tuple(minimum)


def test_database_password_is_required_and_shared(compose: dict[str, Any]) -> None:
    database = environment(service(compose, "postgres"))
    application = environment(service(compose, "streamlake"))
    for env in (database, application):
        with pytest.raises(LookupError):  # no default password
            interpolate(env["POSTGRES_PASSWORD"], {})
        assert interpolate(env["POSTGRES_PASSWORD"], {"POSTGRES_PASSWORD": PASSWORD}) == PASSWORD


# -- Dockerfile ---------------------------------------------------------------------------


def test_version_pins_are_those_of_the_poms_and_pyproject(dockerfile: Dockerfile) -> None:
    pom = pom_properties(ROOT / "pom.xml")
    jvm = pom_properties(ROOT / "jvm" / "pom.xml")
    pins = dockerfile.global_args
    assert pins["SPARK_VERSION"] == pom["spark.version"] == pinned("pyspark")
    assert pins["DELTA_VERSION"] == pom["delta.version"] == jvm["delta.version"]
    assert pins["DELTA_VERSION"] == pinned("delta-spark")
    assert pins["KAFKA_VERSION"] == pom["kafka.broker.version"]
    assert pins["JAVA_VERSION"] == jvm["maven.compiler.release"]


def test_build_stage_runs_the_maven_builds_of_make_setup(dockerfile: Dockerfile) -> None:
    def maven_builds(lines: list[str]) -> set[str]:
        """Each `mvn ... package` as the profile (-P) or pom (-f) it builds."""
        commands = [c for line in lines for c in re.split(r"&&|;|\n", line)]
        return {
            " ".join(re.findall(r"(?:^|\s)(-[Pf]\s+\S+)", command))
            for command in commands
            if re.search(r"\bmvn\b.*\bpackage\b", command)
        }

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    in_make_setup = maven_builds(makefile)
    assert in_make_setup >= {"-P spark", "-P kafka", "-P kcl", "-f jvm/pom.xml"}
    (jars_copy,) = [c for c in dockerfile.copies(dockerfile.final) if ".jars" in c.destination]
    build_stage = dockerfile.stage_named(jars_copy.flags["from"])
    assert dockerfile.stages[build_stage][0].startswith("maven:3.9-eclipse-temurin-17")
    assert maven_builds(dockerfile.runs(build_stage)) == in_make_setup
    # Nothing is resolved when the application image runs or is assembled.
    assert maven_builds(dockerfile.runs(dockerfile.final)) == set()


def test_jars_land_where_the_installed_project_looks_for_them(dockerfile: Dockerfile) -> None:
    """streamlake looks for .jars/ beside its package (streamlake/paths.py): the project is
    installed editable from the folder the jars are copied into."""
    (jars_copy,) = [c for c in dockerfile.copies(dockerfile.final) if ".jars" in c.destination]
    assert [PurePosixPath(s).name for s in jars_copy.sources] == [".jars"]
    project = PurePosixPath(jars_copy.destination).parent
    installs = [
        shlex.split(run) for run in dockerfile.runs(dockerfile.final) if " -e " in f" {run} "
    ]
    assert any(
        words[words.index("-e") + 1] == str(project) for words in installs if "install" in words
    )
    assert PurePosixPath(str(project), "streamlake") in {
        PurePosixPath(c.destination.rstrip("/")) for c in dockerfile.copies(dockerfile.final)
    }


def test_runtime_is_a_java_17_jre_running_streamlake_as_a_user(dockerfile: Dockerfile) -> None:
    image, _ = dockerfile.stages[dockerfile.final]
    assert image.startswith("eclipse-temurin:17-jre")
    users = dockerfile.all("USER", dockerfile.final)
    assert users, "the image runs as root"
    user = users[-1].arguments.partition(":")[0]
    assert user not in ("root", "0")
    assert any(
        re.search(rf"\buseradd\b.*\s{re.escape(user)}(\s|$)", run)
        for run in dockerfile.runs(dockerfile.final)
    ), f"USER {user} is never created"
    (entrypoint,) = dockerfile.all("ENTRYPOINT", dockerfile.final)
    assert json.loads(entrypoint.arguments) == ["streamlake"]


def test_every_copied_path_exists_and_passes_the_ignore_file(dockerfile: Dockerfile) -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore, "the ignore file admits what it lists, nothing else"
    listed = ignore[ignore.index("*") + 1 :]
    admitted = {line[1:].rstrip("/") for line in listed if line.startswith("!")}
    for copy in dockerfile.copies():
        if "from" in copy.flags:
            continue
        for source in copy.sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert PurePosixPath(source).parts[0] in admitted, f"{source} is ignored"


# -- docker/configs/docker.yaml, as the image arranges it ---------------------------------


@pytest.fixture(scope="module")
def image_config(
    dockerfile: Dockerfile, compose: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> LoadedConfig:
    """The configuration the container loads: the environment file the image copies beside
    the pipeline, selected by the image's STREAMLAKE_ENV and STREAMLAKE_CONFIG, with the
    variables compose passes the application."""
    image_env = dockerfile.env(dockerfile.final)
    env_name, config_dir = image_env["STREAMLAKE_ENV"], image_env["STREAMLAKE_CONFIG"]
    by_destination = {
        PurePosixPath(c.destination.rstrip("/")): c
        for c in dockerfile.copies(dockerfile.final)
        if "from" not in c.flags
    }
    (env_source,) = by_destination[PurePosixPath(config_dir, f"{env_name}.yaml")].sources
    (pipeline_source,) = by_destination[PurePosixPath(config_dir)].sources
    target = tmp_path_factory.mktemp("image") / "configs"
    target.mkdir()
    shutil.copy(ROOT / pipeline_source / "pipeline.yaml", target / "pipeline.yaml")
    shutil.copy(ROOT / env_source, target / f"{env_name}.yaml")

    passed = {
        name: interpolate(value, {"POSTGRES_PASSWORD": PASSWORD})
        for name, value in environment(service(compose, "streamlake")).items()
    }
    assert passed.get("STREAMLAKE_ENV", env_name) == env_name
    return load_config(env_name, target, environ=passed)


def test_application_uses_the_compose_services_not_local_ones(
    image_config: LoadedConfig, compose: dict[str, Any]
) -> None:
    settings = image_config.settings
    assert settings.local.enabled is False
    assert (
        settings.kafka.bootstrap_servers
        == kafka_listeners("KAFKA_ADVERTISED_LISTENERS", compose)["PLAINTEXT"]
    )
    assert settings.aws.endpoint_url is not None
    aws = urlsplit(settings.aws.endpoint_url)
    assert aws.hostname == "aws"
    assert str(aws.port) in {p.container_port for p in published_ports(service(compose, "aws"))}
    database = environment(service(compose, "postgres"))
    connections = {
        source.connection
        for source in image_config.pipeline.sources.values()
        if isinstance(source, JdbcSource)
    }
    assert connections, "the pipeline pulls from a database"
    for name in connections:
        connection = settings.jdbc[name]
        assert connection.url == f"jdbc:postgresql://postgres:5432/{database['POSTGRES_DB']}"
        assert connection.username == database["POSTGRES_USER"]
        assert connection.password is not None
        assert connection.password.get_secret_value() == PASSWORD


def test_lake_and_state_are_on_the_applications_volume(
    image_config: LoadedConfig, compose: dict[str, Any], dockerfile: Dockerfile
) -> None:
    mounts = [str(v).split(":")[1] for v in service(compose, "streamlake").get("volumes", [])]
    settings = image_config.settings
    for path in (settings.lake.root, settings.lake.checkpoint_root, str(settings.local.state_dir)):
        assert any(PurePosixPath(path).is_relative_to(mount) for mount in mounts), path
    # The image's user owns the volume's folder, which a new volume takes its owner from.
    workdir = dockerfile.all("WORKDIR", dockerfile.final)[-1].arguments
    assert workdir in mounts
    assert any(
        re.search(rf"\bchown\b.*\s{re.escape(workdir)}(\s|$)", run)
        for run in dockerfile.runs(dockerfile.final)
    )


# -- docker/create_resources.py -----------------------------------------------------------


def test_resource_script_plans_every_source_and_bucket_of_the_pipeline(
    image_config: LoadedConfig,
) -> None:
    script = load_module(DOCKER / "create_resources.py")
    planned = {(r.kind, r.name) for r in script.planned_resources(image_config)}
    pipeline = image_config.pipeline
    for source in pipeline.sources.values():
        if not isinstance(source, FilesSource):  # a files source is its bucket
            assert source_kind(source).resource_identity(source) in planned
    assert {("s3 bucket", bucket) for bucket in pipeline.buckets} <= planned


def test_resource_script_refuses_real_aws(image_config: LoadedConfig) -> None:
    script = load_module(DOCKER / "create_resources.py")
    aws = image_config.settings.aws.model_copy(update={"endpoint_url": None})
    on_aws = LoadedConfig(
        image_config.pipeline,
        image_config.settings.model_copy(update={"aws": aws}),
        image_config.config_dir,
    )
    with pytest.raises(StreamlakeError, match="is not the services of docker"):
        script.planned_resources(on_aws)
