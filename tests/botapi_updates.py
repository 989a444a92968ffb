"""Bot API Update JSON as Telegram sends it, for replay stories."""

CHAT = {"id": -1001700, "type": "supergroup", "title": "Parkrun Crew"}
BOT = {"id": 9000, "is_bot": True, "first_name": "Ayda", "username": "aydarun_bot"}


def user(uid, name="Runner", **kw):
    return {"id": uid, "is_bot": False, "first_name": name, **kw}


def bot_added(date, by=1, status="administrator", uid=1):
    return {"update_id": uid, "my_chat_member": {
        "chat": CHAT, "from": user(by, "Owner"), "date": date,
        "old_chat_member": {"user": BOT, "status": "left"},
        "new_chat_member": {"user": BOT, "status": status}}}


def member(date, uid, old, new, actor=None, update_id=10):
    return {"update_id": update_id, "chat_member": {
        "chat": CHAT, "from": user(actor or uid), "date": date,
        "old_chat_member": {"user": user(uid), "status": old},
        "new_chat_member": {"user": user(uid), "status": new}}}


def message(date, uid=None, text="hi", update_id=20, **extra):
    msg = {"message_id": update_id, "date": date, "chat": CHAT, "text": text, **extra}
    if uid is not None:
        msg["from"] = user(uid) if uid not in (1087968824, 777000) else {
            "id": uid, "is_bot": uid == 1087968824, "first_name": "Telegram"}
    return {"update_id": update_id, "message": msg}


def start(date, uid, payload):
    return {"update_id": 99, "message": {"message_id": 1, "date": date, "from": user(uid),
                                         "chat": {"id": uid, "type": "private", "first_name": "R"},
                                         "text": f"/start {payload}"}}
