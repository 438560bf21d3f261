"""The text layer of transforms (see docs/architecture.md)."""
