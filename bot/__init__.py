"""smsbot: a two-way SMS bot for consumer-loan collections."""

__version__ = "0.1.0"
