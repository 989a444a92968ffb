"""tgsync: keep a running club's roster in the Ayda Run store in step with its Telegram group."""

__version__ = "0.1.0"
