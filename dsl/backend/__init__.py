"""From checked syntax tree to running code: code generation, compile, the reference interpreter."""
