"""The loyalty rules service: gRPC around the policy language's runtime, and the ``loyalty`` CLI."""
