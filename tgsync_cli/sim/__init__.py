"""Telegram as a world the bot can be run against (the simulator) and fault injection: shipped
as real parts, like httpx's MockTransport."""
