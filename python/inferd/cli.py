"""The ``inferd`` command: serve models, and talk to a server that serves them."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .client import DEFAULT_ADDRESS, TLS, Client, JsonBytes
from .errors import ConfigError, InferdError
from .workflow import Blob

DEFAULT_CONFIG = "service/inferd.toml"


def _json_argument(value: str) -> JsonBytes:
    """``--json '[...]'``, or ``--json @file`` to read the file (``@-``: standard input)."""
    if value.startswith("@"):
        source = value[1:]
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    else:
        data = value.encode()
    return JsonBytes(data)


def _parameters(values: Sequence[str]) -> dict[str, Any]:
    """``-p key=value`` pairs; values are JSON when they parse as JSON, else strings."""
    parameters: dict[str, Any] = {}
    for item in values:
        key, separator, raw = item.partition("=")
        if not separator or not key:
            raise SystemExit(f"inferd: bad parameter {item!r}: expected key=value")
        try:
            parameters[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parameters[key] = raw
    return parameters


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    sys.stdout.flush()


def _inputs(args: argparse.Namespace) -> Any:
    if args.json is not None:
        return args.json
    if args.text is not None:
        return args.text
    if args.file is not None:
        return Blob(Path(args.file).read_bytes(), args.content_type or "")
    raise SystemExit("inferd: give the input with --json, --text or --file")


def _output_text(output: Any) -> str | bytes:
    if isinstance(output, str):
        return output
    if isinstance(output, Blob):
        return output.data
    return orjson.dumps(output, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def command_serve(args: argparse.Namespace) -> int:
    from .config import load_config
    from .logs import configure_logging
    from .server.app import run, serve_workers

    config = load_config(args.config)
    changes: dict[str, Any] = {}
    if args.address:
        changes["address"] = args.address
    if args.log_level:
        changes["log_level"] = args.log_level
    if args.loop:
        changes["loop"] = args.loop
    if changes:
        config = config.with_server(**changes)
    configure_logging(config)
    if args.workers > 1:
        return serve_workers(config, args.workers)
    run(config)
    return 0


def _client(args: argparse.Namespace) -> Client:
    """The client a command's flags describe; TLS flags override the INFERD_TLS_* variables."""
    tls = TLS.from_environment()
    flags = {"ca": args.tls_ca, "cert": args.tls_cert, "key": args.tls_key, "server_name": args.tls_server_name}
    if args.tls or any(flags.values()):
        base = tls or TLS()
        tls = TLS(**{key: value or getattr(base, key) for key, value in flags.items()})
    try:
        return Client(args.address, token=args.token, timeout=args.timeout, tls=tls or False)
    except (ValueError, OSError) as error:  # a TLS file that cannot be read, a cert without its key
        raise ConfigError(f"TLS settings: {error}") from None


def command_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.models()
    if args.as_json:
        _print_json([model.__dict__ for model in models])
        return 0
    rows = [("MODEL", "WORKFLOW", "STATE", "INPUT", "CALLS", "SETUP")]
    for model in models:
        calls = ("infer" if model.unary else "") + ("+stream" if model.unary and model.streaming else "stream" if model.streaming else "")
        rows.append((model.name, model.workflow, model.state, model.input_format, calls or "-", model.setup_mode))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for model in models:
        if model.nodes:
            nodes = " ".join(f"{n['name']}={'map:' if n['map'] else ''}{n['target'].rpartition(':')[2]}" for n in model.nodes)
            print(f"{model.name} nodes: {nodes}")
        if model.reason:
            print(f"{model.name}: {model.reason}")
    return 0


def command_setup(args: argparse.Namespace) -> int:
    with _client(args) as client:
        setup_ms = client.setup(args.model)
    print(f"{args.model}: ready (setup {setup_ms:.0f} ms)")
    return 0


def command_load(args: argparse.Namespace) -> int:
    with _client(args) as client:
        setup_ms = client.load(args.model)
    print(f"{args.model}: loaded (setup {setup_ms:.0f} ms)")
    return 0


def command_unload(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.unload(args.model)
    print(f"{args.model}: unloaded")
    return 0


def command_infer(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.infer(args.model, _inputs(args), parameters=_parameters(args.param), id=args.id)
    if args.timings:
        print(" ".join(f"{stage}={ms:.2f}ms" for stage, ms in result.timings.items()), file=sys.stderr)
    output = result.output
    if isinstance(output, str):
        print(output)
    elif isinstance(output, Blob):
        sys.stdout.buffer.write(output.data)
    else:
        _print_json(output)
    return 0


def command_stream(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for chunk in client.stream(args.model, _inputs(args), parameters=_parameters(args.param), id=args.id):
            if chunk.final:
                if args.timings:
                    print(" ".join(f"{s}={ms:.2f}ms" for s, ms in chunk.timings.items()), file=sys.stderr)
                continue
            text = _output_text(chunk.output)
            if isinstance(text, bytes):
                sys.stdout.buffer.write(text)
                sys.stdout.buffer.flush()
            else:
                print(text, end="" if args.raw else "\n", flush=True)
    if args.raw:
        print()
    return 0


def command_trace(args: argparse.Namespace) -> int:
    from .server.waterfall import draw, layout, trace_request

    roots = trace_request(args.config, args.model, _inputs(args), _parameters(args.param), stream=args.stream)
    for bar, row, depth in layout(roots, args.depth):
        print(f"{'  ' * depth}{bar.name}{' [linked]' if bar.linked else ''}  {bar.ms:.3f} ms")
    if args.out:
        title = f"inferd: one {'Stream' if args.stream else 'Infer'} call to {args.model!r}"
        draw(roots, Path(args.out), title, args.depth)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _request_arguments(command: argparse.ArgumentParser) -> None:
    """The model and the one request's input and parameters (infer, stream, trace)."""
    command.add_argument("model", help="the model's name")
    given = command.add_mutually_exclusive_group(required=True)
    given.add_argument("--json", type=_json_argument, help="JSON input: '[{...}]', or @file, or @- for stdin")
    given.add_argument("--text", help="text input")
    given.add_argument("--file", help="a file to send as a blob")
    command.add_argument("--content-type", help="the blob's media type (with --file)")
    command.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                         help="a request parameter (VALUE is JSON, or else a string); repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferd",
        description="inferd: serve models over gRPC, and call them.",
        epilog="Run 'inferd COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the models of a configuration", description=(
        "Serve the models that a configuration declares until SIGTERM or SIGINT. "
        "INFERD_* environment variables override its [server] table; flags override both."))
    serve.add_argument("--config", "-c", default=os.environ.get("INFERD_CONFIG", DEFAULT_CONFIG),
                       help=f"the service configuration (default: $INFERD_CONFIG or {DEFAULT_CONFIG})")
    serve.add_argument("--address", help="host:port to listen on (default: from the configuration)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level")
    serve.add_argument("--loop", choices=["auto", "uvloop", "asyncio"],
                       help="event loop (default: from the configuration; auto: uvloop where installed)")
    serve.add_argument("--workers", type=int, default=int(os.environ.get("INFERD_WORKERS", "1")),
                       help="server processes sharing the port (SO_REUSEPORT), each with its own "
                            "models (default: $INFERD_WORKERS or 1)")
    serve.set_defaults(handler=command_serve)

    def client_command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help, description=description)
        command.add_argument("--address", "-a", default=None,
                             help=f"the server (default: $INFERD_ADDRESS or {DEFAULT_ADDRESS})")
        command.add_argument("--token", default=os.environ.get("INFERD_TOKEN"),
                             help="bearer token, when the server requires one (default: $INFERD_TOKEN)")
        command.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
        command.add_argument("--tls", action="store_true",
                             help="connect over TLS, trusting the system's CAs (default: $INFERD_TLS, "
                                  "or any of the --tls-* flags or their variables)")
        command.add_argument("--tls-ca", metavar="FILE", help="CA certificate(s) that signed the server's (PEM; "
                             "implies --tls; default: $INFERD_TLS_CA)")
        command.add_argument("--tls-cert", metavar="FILE",
                             help="client certificate, for mutual TLS (default: $INFERD_TLS_CLIENT_CERT)")
        command.add_argument("--tls-key", metavar="FILE",
                             help="client private key, for mutual TLS (default: $INFERD_TLS_CLIENT_KEY)")
        command.add_argument("--tls-server-name", metavar="NAME",
                             help="the name the server's certificate must carry, when not the address's host "
                                  "(default: $INFERD_TLS_SERVER_NAME)")
        return command

    models = client_command("models", "list the server's models", "List the server's models and their states.")
    models.add_argument("--json", dest="as_json", action="store_true", help="print JSON, with stage timings")
    models.set_defaults(handler=command_models)

    setup = client_command("setup", "set a model up", "Set a declared model up (idempotent) and wait until it is ready.")
    setup.add_argument("model", help="the model's name")
    setup.set_defaults(handler=command_setup)
    load = client_command("load", "load a declared model", "Load a declared model (also one unloaded before) and wait until it is ready.")
    load.add_argument("model", help="the model's name")
    load.set_defaults(handler=command_load)
    unload = client_command(
        "unload", "unload a model", "Unload a model: new requests are refused, those in flight finish, then it is torn down."
    )
    unload.add_argument("model", help="the model's name")
    unload.set_defaults(handler=command_unload)

    for name, handler, help in (
        ("infer", command_infer, "run one request and print the answer"),
        ("stream", command_stream, "run one request and print the chunks as they arrive"),
    ):
        command = client_command(name, help, help[0].upper() + help[1:] + ".")
        _request_arguments(command)
        command.add_argument("--id", default="", help="request id, echoed by the server")
        command.add_argument("--timings", action="store_true", help="print stage timings to stderr")
        if name == "stream":
            command.add_argument("--raw", action="store_true", help="print chunks back to back, not a line each")
        command.set_defaults(handler=handler)

    trace = commands.add_parser("trace", help="serve a configuration here, trace one request, draw its waterfall", description=(
        "Serve a configuration in this process with tracing on (to a receiver of its own), send one request, "
        "print its spans and draw them as a waterfall PNG. Needs the otel extra, and matplotlib for --out."))
    trace.add_argument("--config", "-c", default=os.environ.get("INFERD_CONFIG", DEFAULT_CONFIG),
                       help=f"the service configuration (default: $INFERD_CONFIG or {DEFAULT_CONFIG})")
    _request_arguments(trace)
    trace.add_argument("--stream", action="store_true", help="call Stream instead of Infer")
    trace.add_argument("--out", "-o", help="the waterfall PNG to write")
    trace.add_argument("--depth", type=int, help="show spans this many levels below the call at most (a graph's nodes: 2)")
    trace.set_defaults(handler=command_trace)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except InferdError as error:
        status = error.details.get("status", error.code)
        print(f"inferd: {status}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
