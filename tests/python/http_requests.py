"""Makes COUNT HTTP GET requests to URL, one after another, each with a
timeout, within BUDGET seconds in all, and prints one line: how many were
answered 200, how many failed (another status, or no answer), how many were
not sent because the budget ran out, and how many distinct processes
answered (the application's body starts with "ok PID" or "failed PID").

  http_requests.py URL COUNT BUDGET

The first failure is described on stderr. Exits 0 whatever the answers.
"""
import sys
import time
import urllib.error
import urllib.request

TIMEOUT_S = 5.0


def answering_pid(body):
    words = body.split()
    return words[1] if len(words) > 1 and words[0] in ("ok", "failed") else None


def main():
    url, count, budget = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    end = time.monotonic() + budget
    ok, failed, sent, pids, first_error = 0, 0, 0, set(), None
    for i in range(count):
        left = end - time.monotonic()
        if left <= 0:
            break
        sent += 1
        body, error = "", None
        try:
            with urllib.request.urlopen("%s/%d" % (url, i), timeout=min(TIMEOUT_S, left)) as reply:
                body = reply.read().decode(errors="replace")
            ok += 1
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            error = "%s: %s" % (exc, body.strip())
        except (urllib.error.URLError, OSError) as exc:
            error = str(exc)
        if error is not None:
            failed += 1
            first_error = first_error or error
        if answering_pid(body) is not None:
            pids.add(answering_pid(body))
    print("%d ok, %d failed, %d not sent, answered by %d processes" % (ok, failed, count - sent, len(pids)),
          flush=True)
    if first_error is not None:
        print("first failure: %s" % first_error, file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
