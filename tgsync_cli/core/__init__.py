"""The core: domain events, the membership rules, the engine, and the protocols it depends on
(Store, TelegramGateway, MemberCache). Imports nothing that talks to the outside world."""
