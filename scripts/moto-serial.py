"""moto_server, one request at a time.

moto's DynamoDB transactions are not isolated from concurrent requests: a cancelled
TransactWriteItems puts back a copy of every table it touched, taken when it began, and so erases
what other requests wrote in the meantime (moto 5.2.5, moto/dynamodb/models/__init__.py,
transact_write_items). Real DynamoDB isolates transactions; the projection tests run concurrent
collectors and need that. Serialising requests gives the emulator the isolation (moto is one
Python process under the GIL, so little is lost). Otherwise the same as `moto_server -H HOST -p PORT`.
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serial(environ, start_response):
        with lock:
            # The whole response is produced inside the lock.
            return list(app(environ, start_response))

    run_simple(
        args.host,
        args.port,
        serial,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
