"""A client process for the chaos tests (test_chaos.py): the Python client, run as a process of
its own so that the test can SIGKILL it in the middle of a call.

    python tests/chaos_client.py ADDRESS held VALUE   one Infer of the batched "held" model
    python tests/chaos_client.py ADDRESS ticker       a Stream of "ticker", read for ever
    python tests/chaos_client.py ADDRESS load         echo and wine Infer and echo Stream calls
                                                      until stdin closes

Each prints a line when its call has been sent (``sent``) or its first chunk read
(``streaming``), then its result as JSON: the output (held), or {"ok": n, "failed": [...]}
(load).
"""

from __future__ import annotations

import json
import sys
import threading

import numpy as np

from inferd import InferdError
from inferd.client import Client

WINE = dict(zip(
    ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
     "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315", "proline"],
    [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0],
))  # fmt: skip


def say(line: str) -> None:
    print(line, flush=True)


def held(client: Client, value: float) -> None:
    say("sent")
    result = client.infer("held", {"x": np.full((1, 4), value, dtype=np.float32)})
    say(json.dumps(result.output["y"].tolist()))


def ticker(client: Client) -> None:
    for index, _ in enumerate(client.stream("ticker", "go")):
        if index == 0:
            say("streaming")


def load(client: Client) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    ok, failed, turn = 0, [], 0
    say("sent")
    while not stop.is_set():
        turn += 1
        try:
            if turn % 3 == 0:
                words = [chunk.output for chunk in client.stream("echo", "one two three") if not chunk.final]
                assert " ".join(words).split() == ["one", "two", "three"], words
            elif turn % 3 == 1:
                assert client.infer("echo", f"call {turn}").output == f"call {turn}"
            else:
                client.infer("wine", [WINE])
            ok += 1
        except (InferdError, AssertionError) as error:
            failed.append(f"{type(error).__name__}: {error}")
    say(json.dumps({"ok": ok, "failed": failed}))


if __name__ == "__main__":
    address, mode, *rest = sys.argv[1:]
    with Client(address, timeout=60) as client:
        if mode == "held":
            held(client, float(rest[0]))
        elif mode == "ticker":
            ticker(client)
        else:
            load(client)
