"""Generated protobuf and gRPC stubs; regenerate with ``python -m service.gen_protos``."""
