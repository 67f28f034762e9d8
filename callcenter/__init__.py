"""callcenter: call-center telephony and queue routing."""

__version__ = "0.1.0"
