"""``python -m inferd.healthcheck [ADDRESS] [SERVICE]``: exit 0 when the server is SERVING.

For container HEALTHCHECKs and probes that cannot run grpc_health_probe. The address defaults
to $INFERD_ADDRESS (0.0.0.0 is asked as 127.0.0.1), else 127.0.0.1:50051. It connects over
TLS as the INFERD_TLS_* variables say (see inferd.client.TLS.from_environment).
"""

from __future__ import annotations

import os
import sys

from .client import DEFAULT_ADDRESS, Client
from .errors import InferdError


def main(argv: list[str]) -> int:
    address = argv[0] if argv else os.environ.get("INFERD_ADDRESS", DEFAULT_ADDRESS)
    address = address.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")
    service = argv[1] if len(argv) > 1 else ""
    try:
        with Client(address, timeout=3) as client:
            status = client.health(service)
    except (InferdError, ValueError, OSError) as error:  # OSError, ValueError: TLS settings
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
