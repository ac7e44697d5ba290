"""A one-line progress bar redrawn with '\\r': iteration, loss and iterations per second.

The loss may be passed as a tensor: it is read (a host sync on a GPU) only when the bar redraws,
at most every `interval` seconds, so a training loop can call update() every step for free.
"""
import sys
import time


def format_bar(it, total, loss=None, rate=None, width=24, prefix="train"):
    """'train [#######.................]   30/100  loss 2.3456  41.2 it/s'"""
    filled = width * it // total if total else width
    bar = "#" * filled + "." * (width - filled)
    digits = len(str(total))
    s = f"{prefix} [{bar}] {it:>{digits}}/{total}"
    if loss is not None:
        s += f"  loss {float(loss):.4f}"
    if rate is not None:
        s += f"  {rate:.1f} it/s"
    return s


class Progress:
    def __init__(self, total, prefix="train", stream=None, interval=0.2, clock=time.perf_counter):
        self.total, self.prefix, self.interval, self.clock = total, prefix, interval, clock
        self.stream = stream if stream is not None else sys.stdout
        self.start = self.last = clock()
        self.it = 0
        self.loss = None

    def update(self, it, loss=None):
        """`it` iterations done; redraw when `interval` has passed or at the end."""
        self.it = it
        now = self.clock()
        if now - self.last >= self.interval or it >= self.total:
            self.last = now
            if loss is not None:
                self.loss = float(loss)
            self.draw(now)

    def draw(self, now=None):
        elapsed = (self.clock() if now is None else now) - self.start
        rate = self.it / elapsed if elapsed > 0 else None
        self.stream.write("\r" + format_bar(self.it, self.total, self.loss, rate, prefix=self.prefix))
        self.stream.flush()

    def close(self):
        self.draw()
        self.stream.write("\n")
        self.stream.flush()
