"""Control of a running trainer: requests read from stdin between steps (pause, resume, stop,
save_checkpoint, and inspection requests answered at once in the live context), SIGTERM/SIGINT as a stop, and
under torchrun one decision for every rank (only rank 0 reads requests)."""

from __future__ import annotations

import signal
import time
from typing import Callable

from . import distributed, protocol


class Controls:
    def __init__(self, run, requests: protocol.Requests | None, answer: Callable[[dict], dict],
                 step: Callable[[], int]):
        """`answer(msg)`: an inspection request's response fields; `step()`: the step events are recorded at."""
        self.run, self.requests, self.answer, self.step = run, requests, answer, step
        self.stop_requested = False
        self.save_requested = False
        self.paused_time = 0.0            # seconds spent paused (not training time)
        self.deferred: list[dict] = []    # requests read during an evaluation, obeyed after it

    def request_stop(self, *_: object) -> None:
        self.stop_requested = True

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT request a stop (the run ends at the next step, with a checkpoint)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, self.request_stop)
            except ValueError:  # not the main thread (tests)
                pass

    def between_steps(self) -> None:
        """Obey queued requests; while paused, block here. Under torchrun every rank then agrees on stop and
        save."""
        if self.requests is not None:
            self._obey()
        self.stop_requested, self.save_requested = distributed.any_of(self.stop_requested, self.save_requested)

    def _obey(self) -> None:
        deferred, self.deferred = self.deferred, []
        for msg in deferred + self.requests.poll():
            self.apply(msg)
        while self.run.status.get("state") == protocol.PAUSED and not self.stop_requested:
            t0 = time.time()
            msg = self.requests.wait(timeout=0.5)
            self.paused_time += time.time() - t0
            if msg is not None:
                self.apply(msg)

    def apply(self, msg: dict) -> None:
        kind = msg["type"]
        if kind in protocol.INSPECT_TYPES:
            self.run.stream.send(protocol.RESPONSE, id=msg.get("id"), **self.answer(msg))
            return
        if kind == protocol.PAUSE and self.run.status.get("state") == protocol.RUNNING:
            self.run.update(state=protocol.PAUSED)
        elif kind == protocol.RESUME and self.run.status.get("state") == protocol.PAUSED:
            self.run.update(state=protocol.RUNNING)
        elif kind == protocol.STOP:
            self.stop_requested = True
        elif kind == protocol.SAVE_CHECKPOINT:
            self.save_requested = True
        self.run.event("control", self.step(), action=kind)
        self.run.stream.send(protocol.RESPONSE, id=msg.get("id"), ok=True, result={"action": kind})

    def stop_between_batches(self) -> bool:
        """Asked between evaluation batches: a stop request (stdin, or SIGTERM/SIGINT) ends the evaluation
        there. Other requests wait for the next `between_steps` (no collective here: rank 0 evaluates alone)."""
        if self.requests is not None and not self.stop_requested:
            for msg in self.requests.poll():
                if msg["type"] == protocol.STOP:
                    self.apply(msg)
                else:
                    self.deferred.append(msg)
        return self.stop_requested

    def refuse_deferred(self) -> None:
        """Requests read during a stopped evaluation and never obeyed: answered as refused."""
        for msg in self.deferred:
            self.run.stream.send(protocol.RESPONSE, id=msg.get("id"), ok=False,
                                 error=f"{msg['type']}: the run stopped before it was obeyed")
        self.deferred = []
