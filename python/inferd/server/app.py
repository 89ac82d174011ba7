"""Building, running and stopping the server.

``create_server`` returns a started server and its port without blocking (tests bind port 0).
``serve`` runs one until SIGTERM or SIGINT, then shuts down in the order that loses nothing:
health NOT_SERVING -> (drain delay) -> ``server.stop(grace)`` (in-flight requests finish,
new ones are refused) -> model teardown.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ..config import ServiceConfig
from ..errors import ConfigError
from ..logs import configure_logging
from ..engine import Engine, ModelState
from ..oip import grpc_service_pb2_grpc as oip_grpc
from .interceptors import SERVICE_NAME, Authenticator, add_inference_service, add_service
from .limits import SharedRates, message_limits, receive_limit
from .oip import SERVICE_NAME as OIP_SERVICE
from .oip import OIP_CODECS, OipServicer
from .metrics import MetricsEndpoint, start_metrics
from .otlp import make_tracing
from .reflection import enable_reflection
from .servicer import WIRE_CODECS, InferenceServicer

__all__ = ["Server", "create_server", "event_loop_factory", "run", "serve", "serve_workers"]

logger = logging.getLogger("inferd.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Server:
    """A started inferd server."""

    grpc_server: grpc.aio.Server
    engine: Engine
    health: health.aio.HealthServicer
    port: int
    config: ServiceConfig
    #: The Prometheus endpoint (None: metrics off).
    metrics: MetricsEndpoint | None = None
    _stopped: bool = field(default=False, init=False)

    async def update_health(self) -> None:
        """Overall health is SERVING once every eager model is ready; each model has its own
        health service name (the model's name), SERVING while it is ready."""
        if self._stopped:
            return
        overall = SERVING if self.engine.eager_ready() else NOT_SERVING
        await self.health.set("", overall)
        await self.health.set(SERVICE_NAME, overall)
        serving = self.engine.serving()
        for name, state in self.engine.states().items():
            await self.health.set(name, SERVING if state is ModelState.READY and serving.get(name, True) else NOT_SERVING)

    async def start_models(self, *, freeze_heap: bool = False) -> None:
        """Sets up the eager models, then publishes health. With ``freeze_heap`` (a process
        that serves and nothing else, as ``inferd serve``), what exists by then (modules,
        models, the engine) is moved out of the garbage collector's sight first, so that its
        full passes no longer walk it (``gc.freeze``): they cost the loop tens of
        milliseconds each while spans waited for export (benches/README.md)."""
        await self.engine.start()
        if freeze_heap:
            gc.collect()  # what is garbage now would never be collected once frozen
            gc.freeze()
        await self.update_health()

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, drain delay, stop accepting and let in-flight calls finish, teardown."""
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        if self.config.server.drain_delay_s:
            await asyncio.sleep(self.config.server.drain_delay_s)
        await self.grpc_server.stop(self.config.server.grace_s if grace is None else grace)
        await self.engine.close()
        if self.metrics is not None:
            await self.metrics.close()


def server_credentials(config: ServiceConfig) -> grpc.ServerCredentials | None:
    """The server's TLS credentials from ``[server.tls]``, or None to listen in plaintext."""
    tls = config.server.tls
    if tls is None:
        return None

    def read(key: str, path: str) -> bytes:
        try:
            return config.resolve(path).read_bytes()
        except OSError as error:
            raise ConfigError(f"[server.tls] {key}: cannot read {path}: {error.strerror or error}") from None

    key, cert = read("key", tls.key), read("cert", tls.cert)
    client_ca = read("client_ca", tls.client_ca) if tls.client_ca is not None else None
    # grpc checks them only when it binds, and then says only that it could not bind: check
    # them here with OpenSSL (the ssl module), so that the error says what is wrong.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.resolve(tls.cert), config.resolve(tls.key))
    except ssl.SSLError as error:
        raise ConfigError(
            f"[server.tls] cert {tls.cert} and key {tls.key} do not load as a PEM certificate chain "
            f"and its private key: {error.reason or error}"
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cadata=client_ca.decode("latin-1"))
        except (ssl.SSLError, ValueError) as error:
            raise ConfigError(f"[server.tls] client_ca {tls.client_ca}: not PEM CA certificates: {error}") from None
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca, require_client_auth=True)
    return grpc.ssl_server_credentials([(key, cert)])


async def create_server(config: ServiceConfig, *, start_models: bool = True, rates: SharedRates | None = None) -> Server:
    """Builds and starts a server for ``config``; returns at once with the bound port.

    With ``start_models``, eager models are set up before this returns (health turns SERVING
    when they are ready); a model whose setup fails is marked failed and the server runs on.
    ``rates``: the tokens' buckets shared with the other workers of ``--workers N`` (None:
    this process's own).
    """
    # A model's limits.max_message_bytes may be over the server's: gRPC takes the largest,
    # and each request is checked against its model's as it is read (inferd.server.limits).
    largest, sizes = receive_limit(config), (message_limits(config), config.server.max_message_bytes)
    options = [
        ("grpc.max_receive_message_length", largest),
        ("grpc.max_send_message_length", largest),
        ("grpc.so_reuseport", 1),
    ]
    authenticator = Authenticator(config.server.auth, rates) if config.server.auth else None
    grpc_server = grpc.aio.server(options=options)
    engine = Engine(config, make_tracing(config))
    add_inference_service(
        grpc_server, InferenceServicer(engine), authenticator, WIRE_CODECS, engine.telemetry,
        access_log=config.server.access_log, tracing=engine.tracing, message_limits=sizes,
    )  # fmt: skip
    add_service(
        grpc_server, OIP_SERVICE, OipServicer(engine), oip_grpc.add_GRPCInferenceServiceServicer_to_server,
        authenticator, OIP_CODECS, engine.telemetry, access_log=config.server.access_log, tracing=engine.tracing,
        message_limits=sizes,
    )  # fmt: skip
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    if config.server.reflection:
        enable_reflection(grpc_server, [SERVICE_NAME, OIP_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name])
    credentials = server_credentials(config)
    if credentials is None:
        port = grpc_server.add_insecure_port(config.server.address)
    else:
        port = grpc_server.add_secure_port(config.server.address, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {config.server.address}")
    server = Server(grpc_server, engine, health_servicer, port, config)
    pending: set[asyncio.Task[None]] = set()

    def health_follows(*_: object) -> None:
        task = asyncio.ensure_future(server.update_health())
        pending.add(task)  # keep a reference until it has run
        task.add_done_callback(pending.discard)

    engine.on_state_change(health_follows)
    await health_servicer.set("", NOT_SERVING)
    await health_servicer.set(SERVICE_NAME, NOT_SERVING)
    await grpc_server.start()
    if engine.telemetry is not None:
        server.metrics = await start_metrics(engine, config.server.metrics.address)
        logger.info("metrics on http://%s:%d/metrics", config.server.metrics.address.rpartition(":")[0], server.metrics.port)
    loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    tls = config.server.tls
    transport = "plaintext" if tls is None else "mutual TLS" if tls.client_ca else "TLS"
    logger.info("inferd listening on %s (port %d, %s, %s event loop)", config.server.address, port, transport, loop)
    if start_models:
        await server.start_models()
    return server


async def serve(config: ServiceConfig, rates: SharedRates | None = None) -> None:
    """Runs a server until SIGTERM or SIGINT, then shuts it down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await create_server(config, start_models=False, rates=rates)
    models = asyncio.create_task(server.start_models(freeze_heap=True))
    try:
        await stop.wait()
        logger.info("shutting down: draining in-flight requests (grace %.1f s)", config.server.grace_s)
    finally:
        models.cancel()
        await server.stop()
        logger.info("stopped")


def event_loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the event loop that ``server.loop`` names. ``auto`` is uvloop where it is
    installed, else asyncio's; ``uvloop`` without uvloop installed is a ConfigError."""
    if loop == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if loop == "uvloop":
            raise ConfigError(
                'server.loop is "uvloop" but uvloop is not installed: pip install uvloop, or set loop = "asyncio"'
            ) from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(config: ServiceConfig, rates: SharedRates | None = None) -> None:
    """Serves ``config`` on the event loop it names (``server.loop``) until SIGTERM or SIGINT."""
    with asyncio.Runner(loop_factory=event_loop_factory(config.server.loop)) as runner:
        runner.run(serve(config, rates))


def _worker(config: ServiceConfig, rates: SharedRates | None) -> None:
    configure_logging(config, worker=True)
    try:
        run(config, rates)
    finally:
        if rates is not None:
            rates.close()


def _worker_config(config: ServiceConfig, index: int) -> ServiceConfig:
    """Worker ``index``'s configuration: its metrics on the metrics port + ``index`` (each
    worker has its own counters, and Prometheus scrapes each; port 0 stays 0)."""
    metrics = config.server.metrics
    host, _, port = metrics.address.rpartition(":")
    if not metrics.enabled or port in ("", "0") or index == 0:
        return config
    return config.with_server(metrics=metrics.model_copy(update={"address": f"{host}:{int(port) + index}"}))


def serve_workers(config: ServiceConfig, workers: int) -> int:
    """Runs ``workers`` server processes on one port (SO_REUSEPORT: the kernel spreads the
    connections), each with its own engine and models, and one token bucket a rated token that
    all of them take from (:class:`~inferd.server.limits.SharedRates`). SIGTERM or SIGINT is
    passed on to every worker, which drains as a single server does; returns once all have
    stopped (0 if all stopped cleanly)."""
    port = config.server.address.rpartition(":")[2]
    if port in ("", "0"):
        raise ConfigError("--workers needs a fixed port: port 0 would give each worker its own")
    auth = config.server.auth
    rates = SharedRates.create(auth.tokens) if auth and any(token.rate for token in auth.tokens) else None
    try:
        return _run_workers(config, workers, rates)
    finally:
        if rates is not None:
            rates.unlink()


def _run_workers(config: ServiceConfig, workers: int, rates: SharedRates | None) -> int:
    context = multiprocessing.get_context("spawn")  # no fork: grpc and torch do not survive it
    processes = [
        context.Process(target=_worker, args=(_worker_config(config, index), rates), name=f"inferd-worker-{index}")
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    logger.info("started %d workers on %s: %s", workers, config.server.address, ", ".join(str(p.pid) for p in processes))

    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    # A worker that was still starting when asked to stop ends by the signal itself: it was
    # serving nothing, so that is a clean stop too.
    clean = (0, -signal.SIGTERM) if stopping else (0,)
    failed = [process for process in processes if process.exitcode not in clean]
    for process in failed:
        logger.error("worker %s exited with %s", process.pid, process.exitcode)
    return 1 if failed else 0
