"""The node's actors: thin shells that own one concern each and talk in messages."""
