"""Service configuration: which models the server serves, and how.

Read from a TOML file (``service/inferd.toml`` by default), validated here, overridden by
``INFERD_*`` environment variables (the ``[server]`` table only) and then by CLI flags. Unknown
keys are refused everywhere: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .config_server import EVENT_LOOPS, AuthConfig, AuthToken, EventLoop, MetricsConfig, Strict, TLSConfig, TracingConfig, ascending
from .errors import ConfigError
from .versions import VersionPolicy, check_versions, expand

__all__ = [
    "AuthToken", "AuthConfig", "BatchingConfig", "InputConfig", "LimitsConfig", "ModelConfig", "NodeConfig",
    "PassthroughInput", "RecordsInput", "TLSConfig", "ServerConfig", "ServiceConfig", "TensorInput",
    "VersionPolicy", "EVENT_LOOPS", "TracingConfig", "MetricsConfig", "load_config",
]  # fmt: skip

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ServerConfig(Strict):
    """The ``[server]`` table."""

    #: host:port to listen on; port 0 picks a free one.
    address: str = "127.0.0.1:50051"
    #: The largest request or response message, in bytes (a model's ``limits`` may differ).
    max_message_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    #: JSON payloads nested deeper (a top-level list is 1 deep) or larger are refused
    #: (INVALID_ARGUMENT) before they are decoded; a model's ``limits`` may differ.
    max_json_depth: int = Field(default=64, gt=0, le=1024)
    max_json_bytes: int | None = Field(default=None, gt=0)
    #: On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    grace_s: float = Field(default=10.0, ge=0)
    #: After health turns NOT_SERVING and before the server stops accepting calls, so that load
    #: balancers notice.
    drain_delay_s: float = Field(default=0.0, ge=0)
    #: A cap on every model's stage threads together (each model has its own: its
    #: ``max_concurrency``, plus ``batching.max_running``); None: no cap. Checked at start.
    threads: int | None = Field(default=None, gt=0)
    #: Serve grpc.reflection so that grpcurl, buf curl and ghz work without the .proto.
    reflection: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: "text": a line a record, for people; "json": a JSON object a line, for log pipelines.
    log_format: Literal["text", "json"] = "text"
    #: One line a call (time, model, RPC, request id, status code, ms) on the logger
    #: ``inferd.access``, at info; never payloads, never secrets.
    access_log: bool = False
    #: The event loop: ``uvloop`` (libuv, in C), ``asyncio`` (the standard library's), or
    #: ``auto``: uvloop where it is installed (it is a dependency, except on Windows).
    loop: EventLoop = "auto"
    auth: AuthConfig | None = None
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()
    #: Without it the server listens in plaintext (terminate TLS in front of it, or set this).
    tls: TLSConfig | None = None


class PassthroughInput(Strict):
    """The payload reaches ``preprocess`` as it came: JSON decoded, tensors as numpy, text, bytes."""

    format: Literal["passthrough"] = "passthrough"


class RecordsInput(Strict):
    """JSON records (a list of objects) with optional flatten, rename and select, in that order."""

    format: Literal["records"]
    #: Flatten nested objects into top-level keys joined by ``delimiter``.
    flatten: bool = False
    delimiter: str = Field(default=".", min_length=1)
    #: old name -> new name, applied after flattening.
    rename: dict[str, str] = {}
    #: Keep only these fields (after rename), in this order; a missing one is an error.
    select: list[str] | None = None


class TensorInput(Strict):
    """JSON records become typed tensors by a declared schema, in the Rust core."""

    format: Literal["tensor"]
    #: Field paths (``"a.b.0"``) or field tables (see docs/schema.md, "Tensor input").
    fields: list[str | dict[str, Any]] = Field(min_length=1)
    delimiter: str = Field(default=".", min_length=1)
    #: The dtype of fields given as plain paths.
    dtype: str = "float32"
    #: The name of the tensor that fields without a ``tensor`` key go to.
    name: str = "input"


InputConfig = Annotated[PassthroughInput | RecordsInput | TensorInput, Field(discriminator="format")]


class LimitsConfig(Strict):
    """Flow control for one model."""

    #: Requests inside the model at once (queued, running or streaming); more answer
    #: RESOURCE_EXHAUSTED with a retry hint.
    max_inflight: int = Field(default=256, gt=0)
    #: Rows waiting in the batch queue (with batching on); more answer RESOURCE_EXHAUSTED.
    max_queue: int = Field(default=1024, gt=0)
    #: Plain (non-async) stage calls of this model running at once in threads.
    max_concurrency: int = Field(default=4, gt=0)
    #: A server-side deadline for each request, in ms; the client's deadline wins when shorter.
    timeout_ms: float | None = Field(default=None, gt=0)
    #: This model's largest request message (RESOURCE_EXHAUSTED beyond), and JSON payloads'
    #: depth and size limits (INVALID_ARGUMENT beyond); unset: ``[server]``'s.
    max_message_bytes: int | None = Field(default=None, gt=0)
    max_json_depth: int | None = Field(default=None, gt=0, le=1024)
    max_json_bytes: int | None = Field(default=None, gt=0)


class BatchingConfig(Strict):
    """Dynamic batching between preprocess and run (off unless this table is present)."""

    #: The most rows in one batch (a request of 10 rows counts 10); larger requests are split.
    max_batch_size: int = Field(default=32, gt=0)
    #: The longest the first request of a batch waits for others.
    max_delay_ms: float = Field(default=2.0, ge=0)
    #: Batch sizes that run best (e.g. [8, 16, 32]): a batch of such a size is released at
    #: once when nothing else is waiting.
    preferred_sizes: list[int] = []
    #: Batches of this model running at once. 1 suits a CPU: while a batch runs, the next one
    #: fills up; more only helps when one batch cannot use the whole device.
    max_running: int = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _sizes(self) -> BatchingConfig:
        for size in self.preferred_sizes:
            if not 0 < size <= self.max_batch_size:
                raise ValueError(f"preferred size {size} is not within 1..max_batch_size ({self.max_batch_size})")
        return self


class NodeConfig(Strict):
    """One node of a graph (``[models.NAME.nodes.NODE]``); docs/graphs.md says what each key does.

    A node is exactly one of: ``model`` (a declared model), ``function`` (``"module:function"``
    glue), ``switch`` (a reference whose value picks one of ``cases``) or ``join`` (``all``,
    ``first`` or ``any`` of ``inputs``). References name ``request``, ``parameters`` or a node,
    with an optional path into its output (``"gen1.text"``, ``"rows.0"``).
    """

    model: str | None = None
    function: str | None = None
    switch: str | None = None
    join: Literal["all", "first", "any"] | None = None
    #: The node's input: one reference (``input``), or several as a list or by argument name.
    input: str | None = None
    inputs: list[str] | dict[str, str] | None = None
    #: Run once per element of the input list, or per chunk of the input stream.
    map: bool = False
    #: A model node: call the model's Stream, so that its chunks flow downstream as they come.
    stream: bool = False
    #: Parameters the node passes to its model or function, and the request's parameters it
    #: forwards (by name, or "*" for all; forwarded ones win).
    parameters: dict[str, Any] = {}
    forward_parameters: list[str] | Literal["*"] = []
    #: A switch: value -> node, and the node for any other value (else the request is refused).
    cases: dict[str, str] = {}
    otherwise: str | None = None
    #: ``join = "any"``: how many inputs must answer.
    k: int | None = Field(default=None, gt=0)
    #: On failure: fail the graph, or skip this node (its consumers skip it too; joins drop it).
    on_error: Literal["fail", "skip"] = "fail"
    #: On failure, answer this value instead (overrides ``on_error``).
    default: Any = None
    timeout_ms: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> NodeConfig:
        kinds = [key for key in ("model", "function", "switch", "join") if getattr(self, key) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a node is exactly one of model, function, switch, join (got {', '.join(kinds) or 'none'})")
        if self.input is not None and self.inputs is not None:
            raise ValueError("give input or inputs, not both")
        kind = kinds[0]
        if self.map and kind not in ("model", "function"):
            raise ValueError("map applies to a model or function node")
        if self.stream and kind != "model":
            raise ValueError("stream applies to a model node")
        if (kind == "switch") != bool(self.cases):
            raise ValueError("a switch needs cases, and only a switch has them")
        if (self.k is not None) != (self.join == "any"):
            raise ValueError('k goes with join = "any", and join = "any" needs k')
        return self

    @property
    def kind(self) -> str:
        return next(key for key in ("model", "function", "switch", "join") if getattr(self, key) is not None)

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


class ModelConfig(Strict):
    """One ``[models.NAME]`` table."""

    #: A registered workflow kind (``onnx``, ``torch``, ``echo``) or ``"package.module:Class"``.
    workflow: str
    #: The model's file or directory, relative to the configuration file.
    path: str | None = None
    #: eager: at server start; lazy: at the first request; explicit: only by the Setup RPC.
    setup: Literal["eager", "lazy", "explicit"] = "eager"
    input: InputConfig = PassthroughInput()
    #: Keyword arguments for the workflow's constructor.
    options: dict[str, Any] = {}
    limits: LimitsConfig = LimitsConfig()
    batching: BatchingConfig | None = None
    #: Run every plain stage on the event loop, without a hop to a thread: for models that
    #: answer in microseconds, where the hop costs more than the model. Never for a model whose
    #: stages take milliseconds: while one runs, the whole server waits.
    inline: bool = False
    description: str = ""
    #: "process": the workflow runs in ``workers`` processes of its own (inferd.isolation),
    #: restarted when one dies, replaced when one grows past ``max_rss_mb``.
    isolation: Literal["none", "process"] = "none"
    workers: int = Field(default=1, ge=1)
    max_rss_mb: int | None = Field(default=None, gt=0)
    #: How much less CPU priority the model's work has than the server's (a nice increment,
    #: 0-19, or "idle": Linux's SCHED_IDLE, CPU only when nothing else wants it): its worker
    #: processes with isolation = "process", else its stage threads. The kernel serves the
    #: other models first when the CPUs are short (docs/configuration.md).
    nice: Annotated[int, Field(ge=0, le=19)] | Literal["idle"] = 0
    #: This model's duration histograms' buckets in seconds (default: ``[server.metrics]``'s).
    metrics_buckets: list[float] | None = None
    #: ``workflow = "graph"``: its nodes, and the node whose output is the answer.
    nodes: dict[str, NodeConfig] = {}
    output: str | None = None
    #: ``[models.NAME.versions.N]``: each version's keys over the model's (inferd.versions).
    versions: dict[str, dict[str, Any]] = {}
    version_policy: VersionPolicy | None = None

    @model_validator(mode="after")
    def _graph(self) -> ModelConfig:
        check_versions(self)
        if self.isolation != "process" and ("workers" in self.model_fields_set or self.max_rss_mb is not None):
            raise ValueError('workers and max_rss_mb are for isolation = "process"')
        if self.isolation == "process" and (self.workflow == "graph" or self.inline):
            raise ValueError('isolation = "process" is for a model, not a graph, and never inline')
        if self.nice and (self.workflow == "graph" or self.inline):
            raise ValueError("nice is for a model's own threads or processes: not a graph's (set its nodes'), never inline")
        if (self.workflow == "graph") != bool(self.nodes):
            raise ValueError('a graph (workflow = "graph") needs nodes, and only a graph has them')
        if (self.workflow == "graph") != (self.output is not None):
            raise ValueError('a graph (workflow = "graph") names its output node, and only a graph does')
        return self

    @field_validator("metrics_buckets")
    @classmethod
    def _model_buckets(cls, buckets: list[float] | None) -> list[float] | None:
        return None if buckets is None else ascending(buckets)


class ServiceConfig(Strict):
    """A whole service: the server and its models."""

    server: ServerConfig = ServerConfig()
    models: dict[str, ModelConfig] = {}
    #: Where relative paths point: the configuration file's folder.
    base_dir: Path = Path(".")
    _versions: dict[str, list[str]] = PrivateAttr(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _names(cls, models: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        for name in models:
            if not MODEL_NAME.match(name):
                raise ValueError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (at most 128)")
        return models

    @model_validator(mode="after")
    def _versioned(self) -> ServiceConfig:
        models, self._versions = expand(self.models)  # wine -> wine/1, wine/2 (inferd.versions)
        object.__setattr__(self, "models", models)  # frozen, but still being made
        return self

    @model_validator(mode="after")
    def _capacity(self) -> ServiceConfig:
        cap = self.server.threads
        if cap is not None and sum(capacity(m) for m in self.models.values()) > cap:
            each = ", ".join(f"{name} {capacity(model)}" for name, model in self.models.items())
            raise ValueError(f"the models' stage threads ({each}) are more than [server] threads = {cap}")
        return self

    @property
    def versions(self) -> dict[str, list[str]]:
        """Each versioned model's served versions' names (``wine/1``...), ascending."""
        return self._versions

    def resolve(self, path: str) -> Path:
        """A path from the configuration, made absolute against the configuration's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()

    def with_server(self, **changes: Any) -> ServiceConfig:
        """A copy whose ``[server]`` table has these values changed (validated)."""
        merged = {**self.server.model_dump(exclude_unset=True), **changes}
        return self.model_copy(update={"server": _validated(ServerConfig, merged, "[server]")})


#: INFERD_* environment variables that override ``[server]`` keys (``table.key``: a sub-table's).
ENVIRONMENT_OVERRIDES = {
    "INFERD_ADDRESS": "address", "INFERD_MAX_MESSAGE_BYTES": "max_message_bytes",
    "INFERD_MAX_JSON_DEPTH": "max_json_depth", "INFERD_MAX_JSON_BYTES": "max_json_bytes", "INFERD_GRACE_S": "grace_s",
    "INFERD_DRAIN_DELAY_S": "drain_delay_s", "INFERD_THREADS": "threads", "INFERD_REFLECTION": "reflection",
    "INFERD_LOG_LEVEL": "log_level", "INFERD_LOG_FORMAT": "log_format", "INFERD_ACCESS_LOG": "access_log",
    "INFERD_LOOP": "loop", "INFERD_METRICS_ENABLED": "metrics.enabled", "INFERD_METRICS_ADDRESS": "metrics.address",
    "INFERD_TRACING": "tracing.enabled", "INFERD_TRACING_ENDPOINT": "tracing.endpoint",
    "INFERD_TLS_CERT": "tls.cert", "INFERD_TLS_KEY": "tls.key", "INFERD_TLS_CLIENT_CA": "tls.client_ca",
}  # fmt: skip


def capacity(model: ModelConfig) -> int:
    """The stage threads a model has of its own: ``max_concurrency``, plus its running batches."""
    return model.limits.max_concurrency + (model.batching.max_running if model.batching is not None else 0)


def _validated(
    model: type[BaseModel], data: Any, where: str, variables: Mapping[tuple[str, ...], str] | None = None
) -> Any:
    """``data`` as a ``model``, or a ConfigError naming every problem; ``variables``: the
    environment variable that set a key (its location), named with the problem it causes."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems: list[str] = []
        sources = variables or {}
        for item in error.errors():
            location = tuple(str(part) for part in item["loc"])
            problem = f"{where}.{'.'.join(location)}: {item['msg']}" if location else f"{where}: {item['msg']}"
            variable = next((sources[location[:end]] for end in (2, 3) if location[:end] in sources), None)
            if variable is not None:
                problem += f" (from the environment: {variable}={item['input']!r})"
            problems.append(problem)
        raise ConfigError(f"invalid configuration: {'; '.join(problems)}") from None


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> ServiceConfig:
    """Reads, validates and returns a service configuration.

    ``INFERD_*`` variables from ``environ`` (default: ``os.environ``) override the ``[server]``
    table. Raises :class:`~inferd.errors.ConfigError` naming every problem found.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {file}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None
    variables: Mapping[str, str] = os.environ if environ is None else environ
    server = dict(data.get("server", {}))
    overridden: dict[tuple[str, ...], str] = {}
    for variable, key in ENVIRONMENT_OVERRIDES.items():
        if variable in variables:
            table, _, name = key.rpartition(".")
            if table:
                server[table] = {**dict(server.get(table) or {}), name: variables[variable]}
            else:
                server[key] = variables[variable]
            overridden[("server", *key.split("."))] = variable
    data["server"] = server
    data["base_dir"] = file.resolve().parent
    config: ServiceConfig = _validated(ServiceConfig, data, str(file), overridden)
    return config
