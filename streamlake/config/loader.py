"""Loads the pipeline spec and one environment's settings, once, at the edge.

Resolution of the config directory: ``--config PATH`` (a directory holding
``pipeline.yaml`` and ``<env>.yaml``, or an environment file with ``pipeline.yaml`` beside
it), else ``./configs`` when it has a ``pipeline.yaml``, else the checkout's ``configs/``.
``STREAMLAKE__SECTION__KEY=value`` overrides ``section.key`` of the environment file; the
value is read as YAML, so numbers and booleans keep their types.

Secrets stay out of the files: ``${env:NAME}`` takes an environment variable, and
``${secret:ID}`` or ``${secret:ID#key}`` an AWS Secrets Manager secret (its string, or one
key of its JSON), read through ``read_secret`` with the environment's own ``aws`` settings.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import ConfigError
from streamlake.paths import checkout_root

OVERRIDE_PREFIX = "STREAMLAKE__"
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_REFERENCE = re.compile(r"\$\{secret:([^}#]+)(?:#([^}]+))?\}")
# Reads a Secrets Manager secret's string by id, with the AWS endpoint of these settings.
SecretReader = Callable[[str, Settings], str]
Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class LoadedConfig:
    """What every command receives: the pipeline, the environment's settings, and where
    they came from."""

    pipeline: Pipeline
    settings: Settings
    config_dir: Path
    # Key paths of settings whose values came from ${env:..} or ${secret:..}: shown masked.
    from_environment: frozenset[str] = frozenset()


def resolve_config_dir(config: Path | None, cwd: Path) -> tuple[Path, Path | None]:
    """Return the config directory and, when ``config`` names a file, that env file."""
    if config is not None:
        if config.is_dir():
            return config, None
        if config.is_file():
            return config.parent, config
        raise ConfigError(
            "no such file or directory", "pass a configs directory", source=str(config)
        )
    local = cwd / "configs"
    if (local / "pipeline.yaml").is_file():
        return local, None
    return checkout_root() / "configs", None


def load_config(
    env: str,
    config: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    read_secret: SecretReader | None = None,
) -> LoadedConfig:
    config_dir, env_file = resolve_config_dir(config, cwd or Path.cwd())
    pipeline_file = config_dir / "pipeline.yaml"
    env_file = env_file or config_dir / f"{env}.yaml"
    if not env_file.is_file():
        known = sorted(p.stem for p in config_dir.glob("*.yaml") if p.stem != "pipeline")
        raise ConfigError(
            f"no configuration for environment {env!r}",
            f"known environments: {', '.join(known) or 'none'}",
            source=str(env_file),
        )
    pipeline = validate(Pipeline, read_yaml(pipeline_file), str(pipeline_file), {})
    raw_settings = read_yaml(env_file)
    # `--config configs/prod.yaml` names its environment by the file.
    raw_settings.setdefault("env", env_file.stem)
    overridden = apply_overrides(raw_settings, environ or {})
    referenced = frozenset(env_reference_paths(raw_settings))
    resolve_env_references(raw_settings, environ or {}, str(env_file))
    if secret_reference_paths(raw_settings):
        # The secrets' own endpoint comes from the settings, before the secrets are in them.
        bare = validate(Settings, without_secrets(raw_settings), str(env_file), overridden)
        resolve_secret_references(
            raw_settings, lambda ref, key: read(ref, bare, read_secret, str(env_file), key)
        )
    settings = validate(Settings, raw_settings, str(env_file), overridden)
    return LoadedConfig(pipeline, settings, config_dir, from_environment=referenced)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", source=str(path), key=where) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping at the top level, got {type(data).__name__}", source=str(path)
        )
    return data


def apply_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Apply ``STREAMLAKE__A__B`` variables in place; return key path -> variable name."""
    applied: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(OVERRIDE_PREFIX):
            continue
        path = [part.lower() for part in name[len(OVERRIDE_PREFIX) :].split("__") if part]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        try:
            node[path[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            node[path[-1]] = value
        applied[".".join(path)] = name
    return applied


def reference_paths(data: Any, pattern: re.Pattern[str], path: str = "") -> list[str]:
    """Key paths (``kafka.options.sasl.jaas.config``) of values that ``pattern`` matches."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in reference_paths(v, pattern, f"{path}.{k}")]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in reference_paths(v, pattern, f"{path}[{i}]")]
    return [path.lstrip(".")] if isinstance(data, str) and pattern.search(data) else []


def env_reference_paths(data: Any) -> list[str]:
    """Key paths of values holding ``${env:NAME}`` or ``${secret:ID}``."""
    return reference_paths(data, ENV_REFERENCE) + secret_reference_paths(data)


def secret_reference_paths(data: Any) -> list[str]:
    return reference_paths(data, SECRET_REFERENCE)


def without_secrets(data: dict[str, Any]) -> dict[str, Any]:
    blank = copy.deepcopy(data)
    resolve_secret_references(blank, lambda _ref, _key: "")
    return blank


def resolve_secret_references(
    data: Any, value_of: Callable[[SecretRef, str], str], path: str = ""
) -> Any:
    """Replace ``${secret:ID}`` / ``${secret:ID#key}`` in every string value, in place;
    ``value_of`` gets the reference and its key path."""
    if isinstance(data, dict):
        for key, value in data.items():
            data[key] = resolve_secret_references(value, value_of, f"{path}.{key}")
        return data
    if isinstance(data, list):
        return [resolve_secret_references(v, value_of, f"{path}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, str):
        return data
    key = path.lstrip(".")
    return SECRET_REFERENCE.sub(lambda m: value_of(SecretRef(m.group(1), m.group(2)), key), data)


@dataclass(frozen=True)
class SecretRef:
    secret_id: str
    key: str | None

    @property
    def spelled(self) -> str:
        return f"${{secret:{self.secret_id}{'#' + self.key if self.key else ''}}}"


def read(
    ref: SecretRef, settings: Settings, read_secret: SecretReader | None, source: str, key: str
) -> str:
    """The referenced secret's value; a ConfigError naming file, key and secret otherwise."""
    if read_secret is None:
        raise ConfigError(
            f"{ref.spelled} needs AWS Secrets Manager, which this command does not read",
            "use ${env:NAME} here",
            source=source,
            key=key,
        )
    try:
        text = read_secret(ref.secret_id, settings)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{ref.spelled}: the secret cannot be read: {first}",
            "check the secret's name and the aws settings' region and credentials",
            source=source,
            key=key,
        ) from None
    if ref.key is None:
        return text
    try:
        value = json.loads(text)[ref.key]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{ref.spelled}: the secret is not a JSON object with the key {ref.key!r}",
            "store the secret as JSON, or drop the #key",
            source=source,
            key=key,
        ) from None
    return str(value)


def resolve_env_references(
    data: Any, environ: Mapping[str, str], source: str, path: str = ""
) -> Any:
    """Replace ``${env:NAME}`` in every string value, in place, so that a secret (a SASL
    password, a key) stays out of the committed file; a variable that is not set is an
    error naming the key."""
    if isinstance(data, dict):
        for key, value in data.items():
            data[key] = resolve_env_references(value, environ, source, f"{path}.{key}")
        return data
    if isinstance(data, list):
        return [
            resolve_env_references(v, environ, source, f"{path}[{i}]") for i, v in enumerate(data)
        ]
    if not isinstance(data, str):
        return data

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(
                f"${{env:{name}}} names an environment variable that is not set",
                f"export {name}",
                source=source,
                key=path.lstrip("."),
            )
        return environ[name]

    return ENV_REFERENCE.sub(value_of, data)


def validate(
    model: type[Model], data: dict[str, Any], source: str, overridden: Mapping[str, str]
) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        key, message = describe_error(errors[0], data)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        origin = overridden.get(key)
        where = f"environment variable {origin}" if origin else source
        raise ConfigError(message, source=where, key=key) from None


def describe_error(error: ErrorDetails, data: Any) -> tuple[str, str]:
    """Turn one pydantic error into (key path, one-line problem)."""
    key = key_path(error["loc"], data)
    kind = error["type"]
    if kind == "extra_forbidden":
        return key, "unknown key"
    if kind == "missing":
        return key, "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"] and ": " in message:
        # Cross-reference checks name their own key path first.
        key, _, message = message.partition(": ")
        return key, message
    if kind not in ("value_error", "assertion_error") and "input" in error:
        message += f" (got {short_repr(error['input'])})"
    return key, message


def key_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Dotted path of ``loc`` as the user wrote it, dropping union tags pydantic inserts."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and part == node.get("kind"):
            continue  # the tag of a discriminated union, not a key of the file
        if part == "[key]":
            continue  # pydantic's marker for a mapping's key (the one just named) itself
        node = child(node, part)
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


def child(node: Any, part: int | str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
