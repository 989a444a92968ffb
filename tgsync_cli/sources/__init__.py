"""Adapters from the outside into domain events: Bot API JSON, pyrogram objects, Desktop exports, scenario files."""
