"""One of the processes racing for study leases (tests/chaos/test_lease.py).

    python lease_racer.py STORAGE ROUNDS T0 STEP

Round i starts at wall time T0 + i*STEP for every racer: each tries to take the lease of study
`race-i`, prints `i won` or `i refused`, holds a won lease to the round's end, then releases.
"""

from __future__ import annotations

import sys
import time

from ablation.run.lease import LeaseHeld, StudyLease


def main(storage: str, rounds: int, t0: float, step: float) -> None:
    for i in range(rounds):
        time.sleep(max(0.0, t0 + i * step - time.time()))
        lease = StudyLease(storage, f"race-{i}")
        try:
            lease.acquire()
        except LeaseHeld as err:
            print(f"{i} refused {err}", flush=True)
            continue
        print(f"{i} won", flush=True)
        time.sleep(max(0.0, t0 + (i + 0.8) * step - time.time()))
        lease.release()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
