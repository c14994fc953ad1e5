"""wrk as the load generator of bench/inbound.py (``--load wrk``).

wrk (the Debian package) costs a fraction of an aiohttp client per request, so the bare
endpoint is measured nearer its real speed (with the aiohttp client the generator saturates
first and the bare rate is only a lower bound). The requests are the same pre-signed Twilio
webhooks: written to a file, read by a Lua script in every wrk thread (each thread takes its
own share, so no request is sent twice), sent closed-loop over the connections; a thread stops
once it has its share's answers (``repeat`` times over: the bare endpoint can take the same
requests again, the service would only find duplicates) and leaves a marker file; when every
thread's is there, wrk is stopped with SIGINT, and its own run time (until the signal) is the
figure. Requests still in flight when a thread stops are not counted: at most one per
connection.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local reqs, sent, answered, limit, bad = {}, 0, 0, 0, 0
local marker
function init(args)
  local file, threads, rounds, path = args[1], tonumber(args[2]), tonumber(args[3]), args[4]
  marker = args[5] .. id
  local n = 0
  for line in io.lines(file) do
    if n % threads == id then
      local body, signature = line:match("^([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = signature,
      }, body)
    end
    n = n + 1
  end
  limit = #reqs * rounds
end

function request()
  sent = sent + 1
  -- past the share (at most one per connection, abandoned at the stop): the last again
  return reqs[(math.min(sent, limit) - 1) % #reqs + 1]
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then bad = bad + 1 end
  if answered == limit then
    -- wrk's main thread sleeps out -d whatever its threads do: a file tells the bench this
    -- thread is through, and the bench stops wrk (SIGINT: wrk reports the time until then)
    local f = io.open(marker, "w")
    if f then f:close() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SMSBOT-WRK %d %d %d %d\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class WrkResult:
    requests: int  # answered (any status)
    seconds: float  # wrk's own measure of the run
    bad_status: int  # answers other than 2xx/3xx (wrk's count)
    socket_errors: int
    client_cpu_s: float  # wrk's CPU (user + system)


def write_requests(path: Path, reqs: Sequence[tuple[bytes, dict[str, str]]]) -> None:
    """One request per line: the urlencoded body (no tab, no newline) and its signature."""
    with path.open("wb") as f:
        for body, headers in reqs:
            f.write(body + b"\t" + headers["X-Twilio-Signature"].encode() + b"\n")


def write_script(path: Path) -> Path:
    path.write_text(WRK_SCRIPT)
    return path


def binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("--load wrk needs wrk (apt-get install wrk)")
    return found


async def run(
    url: str,
    webhook_path: str,
    requests_file: Path,
    script: Path,
    *,
    threads: int,
    connections: int,
    rounds: int = 1,
    max_seconds: int = 120,
    core: int | None = None,
) -> WrkResult:
    """wrk against ``url`` until every thread has its share's answers (``rounds`` times);
    ``script`` as :func:`write_script` wrote it."""
    markers = requests_file.with_suffix(".done")
    # fmt: off
    cmd = [binary(), "-t", str(threads), "-c", str(connections), "-d", f"{max_seconds}s",
           "-s", str(script), url + webhook_path, "--",
           str(requests_file), str(threads), str(rounds), webhook_path, f"{markers}-"]
    # fmt: on
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    done = [Path(f"{markers}-{i}") for i in range(threads)]
    for marker in done:
        marker.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    reading = asyncio.ensure_future(proc.communicate())
    while not reading.done():
        if all(marker.exists() for marker in done):
            proc.send_signal(signal.SIGINT)
            break
        await asyncio.sleep(0.002)
    out, _ = await reading
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = out.decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("SMSBOT-WRK ")), None)
    if line is None:
        raise SystemExit(f"wrk failed (exit {proc.returncode}):\n{text[-2000:]}")
    requests, duration_us, bad, errors = (int(v) for v in line.split()[1:])
    if not all(marker.exists() for marker in done):
        raise SystemExit(f"wrk ran out of time ({max_seconds} s) before its requests were done")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkResult(requests, duration_us / 1e6, bad, errors, cpu)
