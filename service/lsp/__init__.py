"""The policy language server (``loyalty lsp``): diagnostics, hover, completion, navigation,
formatting, quick fixes, test lenses and award-bound hints for editors.

It lives in ``service/`` rather than ``dsl/tools/`` because it is a process that talks a
protocol (pygls over stdio), like the gRPC server, while ``dsl`` stays the pure language
library the service, the CLI and the server all build on. ``language`` is its one door
into ``dsl``; ``document`` parses and checks an open file; ``features`` computes the
answers; ``server`` holds the connection and the scheduling.
"""

from service.lsp.server import create_server, serve_stdio

__all__ = ["create_server", "serve_stdio"]
