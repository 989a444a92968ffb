"""Weekly figures from a club's membership log, as an organizer reads them."""

from datetime import datetime

from tgsync_cli.core.insights import change_kind, iso_week, weekly_stats

MON = datetime(2024, 12, 2, 9, 0)  # ISO week 2024-W49


def entry(at, tid, was, now, role_was="member", role_now="member", link=None, by=None):
    return {"at": at, "telegram_id": tid, "from": None if was is None else {"status": was, "role": role_was},
            "to": {"status": now, "role": role_now}, "invite_link": link, "invited_by": by}


def test_a_first_join_a_rejoin_a_leave_a_kick_and_a_promotion_are_told_apart():
    assert change_kind(entry(MON, 1, None, "active")) == "joined"
    assert change_kind(entry(MON, 1, "left", "active")) == "joined"
    assert change_kind(entry(MON, 1, "active", "left")) == "left"
    assert change_kind(entry(MON, 1, "active", "kicked")) == "kicked"
    assert change_kind(entry(MON, 1, "active", "active", "member", "organizer")) == "promoted"
    assert change_kind(entry(MON, 1, "active", "active", "organizer", "member")) == "demoted"
    assert change_kind(entry(MON, 1, "left", "kicked")) is None  # a ban after leaving is no second departure


def test_a_season_of_three_weeks_counts_joins_by_link_and_inviter_and_shows_quiet_weeks():
    log = [
        entry(datetime(2024, 11, 25, 8), 1, None, "active", link="Aida's link", by=10),
        entry(datetime(2024, 11, 26, 8), 2, None, "active", link="Aida's link", by=10),
        entry(datetime(2024, 11, 27, 8), 3, None, "active", link="Ivan's link", by=11),
        entry(datetime(2024, 12, 10, 8), 2, "active", "left"),
        entry(datetime(2024, 12, 11, 8), 3, "active", "kicked"),
        entry(datetime(2024, 12, 11, 9), 1, "active", "active", "member", "organizer"),
    ]
    writers = {"2024-W48": 3, "2024-W50": 1}
    reconciles = [{"at": datetime(2024, 12, 12), "drift": 2}, {"at": datetime(2024, 12, 13), "drift": 0}]
    rows = weekly_stats(log, writers, reconciles, weeks=3, now=datetime(2024, 12, 14, 12))
    assert [r.week for r in rows] == ["2024-W48", "2024-W49", "2024-W50"]
    w48, w49, w50 = rows
    assert (w48.joined, w48.left, w48.kicked, w48.net, w48.active_writers) == (3, 0, 0, 3, 3)
    assert w48.joins_by_link == {"Aida's link": 2, "Ivan's link": 1}
    assert w48.joins_by_inviter == {"10": 2, "11": 1}
    assert (w49.joined, w49.net, w49.active_writers, w49.drift) == (0, 0, 0, None)
    assert (w50.left, w50.kicked, w50.net, w50.drift) == (1, 1, -2, 0)  # the week's last reconcile


def test_changes_older_than_the_window_are_left_out():
    rows = weekly_stats([entry(datetime(2024, 1, 3), 1, None, "active")], {}, [], weeks=2,
                        now=datetime(2024, 12, 14))
    assert sum(r.joined for r in rows) == 0
    assert rows[-1].week == iso_week(datetime(2024, 12, 14))


def test_iso_weeks_cross_the_new_year_the_iso_way():
    assert iso_week(datetime(2024, 12, 30)) == "2025-W01"
    rows = weekly_stats([entry(datetime(2024, 12, 31), 1, None, "active")], {}, [], weeks=2,
                        now=datetime(2025, 1, 2))
    assert [(r.week, r.joined) for r in rows] == [("2024-W52", 0), ("2025-W01", 1)]
