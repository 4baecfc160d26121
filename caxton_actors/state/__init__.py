"""Agent state in business-provided storage: the state tool contract, its backends, MCP."""
