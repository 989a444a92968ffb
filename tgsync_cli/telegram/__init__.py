"""Live Telegram side (pyrogram/kurigram): translation into domain events, the gateway, the client."""
