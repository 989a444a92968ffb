"""Operator commands, one module each: reconcile, history import, doctor, forget, live imports."""

from tgsync_cli.ops.common import GatewayFactory, gateway_for, resolve_chat_id
from tgsync_cli.ops.doctor import Check, doctor_checks, live_routes
from tgsync_cli.ops.forget import ForgetReport, forget, forget_preview, tell_running_serves
from tgsync_cli.ops.history_import import (
    HistoryReport,
    check_chat_matches,
    import_history,
    import_history_file,
    import_scanned,
    scan_history_file,
)
from tgsync_cli.ops.reconcile import ClubReconcile, ReconcileOutcome, reconcile_clubs

__all__ = ["GatewayFactory", "gateway_for", "resolve_chat_id", "Check", "doctor_checks", "live_routes",
           "ForgetReport", "forget", "forget_preview", "tell_running_serves", "HistoryReport",
           "check_chat_matches", "import_history", "import_history_file", "import_scanned", "scan_history_file",
           "ClubReconcile", "ReconcileOutcome", "reconcile_clubs"]
