"""nimbys-bot: keeps the NIMBYS self-hosted runner pool healthy and its workflows well behaved."""

__version__ = "0.1.0"
