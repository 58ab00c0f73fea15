"""Helpers shared by the test suite: tiny checkpoints and synthetic speech."""
