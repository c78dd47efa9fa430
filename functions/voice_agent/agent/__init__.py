"""The agent a fork edits: its configuration (``config.py``), system prompt (``system_prompt.md``)
and its own tools (``tools.py``)."""
