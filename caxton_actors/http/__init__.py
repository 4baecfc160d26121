"""The HTTP API: Falcon resources that ask actors."""
