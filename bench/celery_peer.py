"""The peer of bench/dist.sh: seed 002's own stack, Celery with a Redis broker and result
backend, doing the same no-op task end to end (queued, run by a worker, result stored and
fetched). Usage: CBX_CELERY_URL=redis://... python3 bench/celery_peer.py N   (its workers, started
by bench/dist.sh: CBX_CELERY_URL=... celery -A celery_peer worker --pool solo)
Prints tab-separated lines: case, value, unit; last, the CPU time this submitter used."""
import os
import resource
import sys
import time

from celery import Celery

URL = os.environ.get("CBX_CELERY_URL", "redis://127.0.0.1:6379/0")
app = Celery("cbxpeer", broker=URL, backend=URL)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_prefetch_multiplier=64, task_acks_late=True)


@app.task(name="noop")
def noop():
    return {}


def main():
    n = int(sys.argv[1])
    t0 = time.monotonic()
    results = [noop.delay() for _ in range(n)]
    for r in results:
        r.get(timeout=600)
    t = time.monotonic() - t0
    print("throughput_%d\t%.0f\ttasks/s" % (n, n / t))
    rt = []
    for _ in range(500):
        a = time.monotonic()
        noop.delay().get(timeout=600)
        rt.append((time.monotonic() - a) * 1e3)
    rt.sort()
    print("round_trip_p50\t%.3f\tms" % rt[len(rt) // 2])
    print("round_trip_p99\t%.3f\tms" % rt[len(rt) * 99 // 100])
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print("submitter_cpu\t%.2f\ts" % (ru.ru_utime + ru.ru_stime))


if __name__ == "__main__":
    main()
