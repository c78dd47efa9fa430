"""The stack's building blocks, one per box of the architecture diagram."""
