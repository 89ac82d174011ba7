"""The conformance server: ``python clients/conformance/serve.py CONNECTION.json``.

Starts inferd.toml twice in this process, plaintext without auth and over TLS with two bearer
tokens (a CA and a certificate for ``localhost`` and 127.0.0.1 are made in a temporary
folder), holds the only slot of ``busy`` with one request so that every other one is refused,
then writes where to connect to CONNECTION.json (written whole, then renamed) and serves until
SIGTERM or SIGINT. Every language's runner reads that file (``INFERD_CONFORMANCE``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOKENS = {"all": "conformance-token-all", "wine-only": "conformance-token-wine"}


async def main(connection: Path) -> None:
    os.environ.setdefault("INFERD_METRICS_ADDRESS", "127.0.0.1:0")
    sys.path.insert(0, str(HERE))
    sys.path.append(str(ROOT / "tests"))
    from conformance_models import Busy
    from tls_certificates import Authority  # tests/tls_certificates.py: the tests' own

    from inferd.client import AsyncClient
    from inferd.config import load_config
    from inferd.server.app import create_server

    folder = Path(tempfile.mkdtemp(prefix="inferd-conformance-"))
    authority = Authority(folder, "inferd-conformance-ca")
    issued = authority.issue("localhost", server=True)
    config = load_config(HERE / "inferd.toml")
    tokens = [{"name": "all", "token": TOKENS["all"]}, {"name": "wine-only", "token": TOKENS["wine-only"], "models": ["wine"]}]
    secure_config = config.with_server(tls={"cert": str(issued.cert), "key": str(issued.key)}, auth={"tokens": tokens})
    plain, secure = await create_server(config), await create_server(secure_config)
    address = f"127.0.0.1:{plain.port}"
    holder = AsyncClient(address, tls=False)
    held = asyncio.ensure_future(holder.infer("busy", {"hold": True}, timeout=None))
    await asyncio.get_running_loop().run_in_executor(None, Busy.entered.wait, 60)
    written = {
        "plain": address, "secure": f"127.0.0.1:{secure.port}", "ca": str(authority.cert), "server_name": "localhost",
        "tokens": TOKENS, "max_message_bytes": config.server.max_message_bytes,
    }  # fmt: skip
    connection.with_suffix(".tmp").write_text(json.dumps(written, indent=2))
    connection.with_suffix(".tmp").rename(connection)
    print(f"conformance server: {address} (plaintext), {written['secure']} (TLS, tokens)", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    Busy.released.set()
    await asyncio.wait({held}, timeout=5)
    await holder.close()
    await asyncio.gather(plain.stop(grace=1), secure.stop(grace=1))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
