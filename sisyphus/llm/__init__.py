"""LLM side of a turn: streaming client (client.py), phrase chunker (chunker.py), history (history.py)."""
