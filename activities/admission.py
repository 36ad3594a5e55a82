"""Admitting a run as it starts: its own autonomy, overridden by the maintenance windows open
at that moment (a schedule's firing is judged when it fires, not when it was set up)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from core.maintenance import effective_autonomy
from core.store.maintenance import open_windows
from core.store.models import Run, utcnow
from core.store.session import transaction
from workflows.contracts import ADMIT_RUN, AdmitInput, Admitted


class AdmissionActivities:
    """A local activity: one DB read of the open windows, and the outcome kept on the row."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @activity.defn(name=ADMIT_RUN)
    def admit_run(self, inp: AdmitInput) -> Admitted:
        """The level the run starts with now, and the window that set it."""
        admission = inp.admission
        with transaction(self._sessions) as session:
            windows = open_windows(session, utcnow())
            autonomy = effective_autonomy(admission.autonomy, admission.subjects, windows)
            window = autonomy.window
            run = session.get(Run, inp.run_id)
            if run is not None:
                # The row shows how the run was let in, as a run admitted at creation does.
                held_by = window.id if window is not None else None
                run.parameters = {
                    **(run.parameters or {}),
                    "autonomy": autonomy.level,
                    "window": held_by,
                }
        if window is None:
            return Admitted(autonomy.level)
        return Admitted(autonomy.level, window_id=window.id, window_name=window.name)
