"""The input boundary: request layouts and the decoders generated from them."""
