"""What runs the bot: serve, the pipeline, the live Telegram gateway and client, Redis cache,
Celery queue, config, logs, wiring."""
