"""Local stand-in for NASA SkyView, serving cutouts from a mirror directory.

Speaks the three-step protocol astroquery's ``SkyViewClass`` uses, so the real
client can be pointed at it unchanged (``sv.URL = service.url``):

1. ``GET /current/cgi/basicform.pl``: HTML with one ``<form>`` whose
   ``<select name="survey" id=...>`` options are the valid survey names.
2. ``GET /current/cgi/runquery.pl?Position=RA+DEC&survey=...&pixels=...``:
   HTML with one ``<a href="../../tempspace/fits/skv..._K.fits">FITS</a>`` per
   requested survey that the mirror holds at that position.
3. ``GET /tempspace/fits/skv..._K.fits``: the mirror file, gunzipped, byte for
   byte what SkyView returned (its sha256 is the index's).

Lookup: the index row of that survey nearest to ``Position`` (decimal degrees,
J2000) within ``match_radius_arcsec`` (1"). When nothing matches (no row that
close, a survey listed in the form but not mirrored, ``pixels`` or ``size``
other than the mirrored cutout's, non-J2000 ``coordinates`` or non-Tan
``projection``), that survey gets a table row saying "No data" and no FITS link,
so astroquery returns an empty list rather than a wrongly sized image: the
mirror cannot resample. An unparsable Position gives an error page (status 200,
as SkyView does) with no links.

Faults (:class:`FaultPlan`) can be injected per stage: ``form``, ``results``,
``fits``. Stdlib only; the server runs in a background thread on 127.0.0.1.
"""

from __future__ import annotations

import csv
import gzip
import html
import math
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence
from urllib.parse import parse_qs, urlencode, urlsplit


FORM_PATH = "/current/cgi/basicform.pl"
RESULTS_PATH = "/current/cgi/runquery.pl"
# skv<serial><row:05d>_<k>.fits: all digits like SkyView's own names; the row
# is encoded in the name so links stay valid without server-side state.
_FITS_RE = re.compile(r"^/tempspace/fits/skv(\d+)(\d{5})_(\d+)\.fits$")
# Query parameter marking the target of an injected redirect; such requests are
# exempt from faults so a redirect can never loop.
_REDIRECT_MARK = "standin_redirected"

STAGES = ("form", "results", "fits")
COMMON_FAULTS = ("http_500", "http_503", "http_404", "reset", "slow", "html_200", "redirect")
FITS_FAULTS = ("truncated", "dropped", "wrong_shape", "all_nan", "all_zero")
FAULT_KINDS = COMMON_FAULTS + FITS_FAULTS

# Listed in the form but not mirrored: valid for astroquery, "No data" here.
_EXTRA_SURVEYS = {
    "Radio:MHz": ["SUMSS 843 MHz", "TGSS ADR1", "WENSS"],
    "Optical:DSS": ["DSS", "DSS2 Red"],
}
_WRONG_SHAPE = 100


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one request."""

    kind: str
    delay_s: float = 0.0


@dataclass(frozen=True)
class FaultRule:
    """Apply ``kind`` to matching requests number ``skip`` .. ``skip+count-1``.

    Matching: same ``stage`` and, when ``file`` is set (an index ``file`` value
    such as ``"FIRST/212.13500+00.52609.fits.gz"``), a request for that file
    (fits) or a results page linking it. Numbering is 0-based per rule;
    ``count=None`` means every match from ``skip`` on. ``delay_s`` is for
    ``slow``.
    """

    kind: str
    stage: str = "fits"
    file: str | None = None
    count: int | None = 1
    skip: int = 0
    delay_s: float = 1.0

    def __post_init__(self) -> None:
        _check_kind(self.kind, self.stage)
        if self.stage == "form" and self.file is not None:
            raise ValueError("form-stage rules cannot target a file")


def _check_kind(kind: str, stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
    if kind in FITS_FAULTS and stage != "fits":
        raise ValueError(f"fault {kind!r} only applies to the fits stage")


class FaultPlan:
    """Chooses a fault (or none) for each request.

    Rules are tried first, in order; the first rule in its window wins. If no
    rule fires, a random fault is injected with ``probability`` (drawn from
    ``kinds`` valid for the stage, only at ``stages``). The draw for a request
    depends only on ``(seed, stage, files, n)`` where ``n`` counts earlier
    requests with the same stage and files, so a plan is reproducible even
    when concurrent clients interleave differently.
    """

    def __init__(
        self,
        rules: Iterable[FaultRule] = (),
        *,
        probability: float = 0.0,
        seed: int = 0,
        kinds: Iterable[str] = FAULT_KINDS,
        stages: Iterable[str] = STAGES,
        delay_s: float = 1.0,
    ) -> None:
        self.rules = tuple(rules)
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be in [0, 1]")
        self.probability = probability
        self.seed = seed
        self.kinds = tuple(kinds)
        self.stages = tuple(stages)
        for s in self.stages:
            if s not in STAGES:
                raise ValueError(f"unknown stage {s!r}")
        for k in self.kinds:
            if k not in FAULT_KINDS:
                raise ValueError(f"unknown fault {k!r}")
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._rule_seen = [0] * len(self.rules)
        self._key_seen: Counter[tuple[str, tuple[str, ...]]] = Counter()
        self.applied: list[tuple[str, tuple[str, ...], Fault]] = []

    def decide(self, stage: str, files: Sequence[str] = ()) -> Fault | None:
        """The fault for the next request at ``stage`` about ``files``, or None."""
        files = tuple(files)
        with self._lock:
            fault = None
            for i, rule in enumerate(self.rules):
                if rule.stage != stage or (rule.file is not None and rule.file not in files):
                    continue
                n = self._rule_seen[i]
                self._rule_seen[i] += 1
                in_window = n >= rule.skip and (rule.count is None or n < rule.skip + rule.count)
                if fault is None and in_window:
                    fault = Fault(rule.kind, rule.delay_s if rule.kind == "slow" else 0.0)
            n = self._key_seen[(stage, files)]
            self._key_seen[(stage, files)] += 1
            if fault is None and self.probability > 0 and stage in self.stages:
                choices = [k for k in self.kinds if stage == "fits" or k not in FITS_FAULTS]
                rng = random.Random(f"{self.seed}|{stage}|{'|'.join(files)}|{n}")
                if choices and rng.random() < self.probability:
                    kind = rng.choice(choices)
                    fault = Fault(kind, self.delay_s if kind == "slow" else 0.0)
            if fault is not None:
                self.applied.append((stage, files, fault))
            return fault


# --------------------------------------------------------------------------- FITS


@lru_cache(maxsize=256)
def _read_gz(path: str) -> bytes:
    with gzip.open(path, "rb") as f:
        return f.read()


def _card(key: str, value: object) -> bytes:
    return f"{key:<8}= {value!s:>20}".ljust(80).encode("ascii")


def _split_fits(data: bytes) -> tuple[list[bytes], bytes, dict[str, str]]:
    """(header cards without END, data part, {keyword: raw value}) of a primary HDU."""
    cards, values = [], {}
    for i in range(0, len(data), 80):
        card = data[i : i + 80]
        key = card[:8].decode("ascii", "replace").strip()
        if key == "END":
            hlen = -(-(i + 80) // 2880) * 2880
            return cards, data[hlen:], values
        cards.append(card)
        if card[8:10] == b"= ":
            values[key] = card[10:].split(b"/")[0].decode("ascii", "replace").strip()
    raise ValueError("no END card")


def _join_fits(cards: list[bytes], payload: bytes) -> bytes:
    head = b"".join(cards) + b"END".ljust(80)
    head += b" " * (-len(head) % 2880)
    return head + payload + b"\0" * (-len(payload) % 2880)


def _faulty_fits(original: bytes, kind: str) -> bytes:
    """A valid FITS derived from ``original``: cropped, all-NaN or all-zero."""
    cards, data, v = _split_fits(original)
    bitpix, nx, ny = int(v["BITPIX"]), int(v["NAXIS1"]), int(v["NAXIS2"])
    size = abs(bitpix) // 8
    if kind == "wrong_shape":
        # Central crop keeps real pixel values and a consistent WCS.
        w = _WRONG_SHAPE
        ox, oy = max((nx - w) // 2, 0), max((ny - w) // 2, 0)
        rows = []
        for y in range(oy, oy + w):
            row = data[(y * nx + ox) * size : (y * nx + ox + w) * size]
            rows.append(row.ljust(w * size, b"\0"))
        new = {"NAXIS1": w, "NAXIS2": w}
        for key, off in (("CRPIX1", ox), ("CRPIX2", oy)):
            if key in v:
                new[key] = repr(float(v[key]) - off)
        cards = [_card(c[:8].decode().strip(), new[c[:8].decode().strip()])
                 if c[:8].decode("ascii", "replace").strip() in new else c for c in cards]
        return _join_fits(cards, b"".join(rows))
    n = nx * ny
    if kind == "all_zero":
        return _join_fits(cards, b"\0" * (n * size))
    if kind == "all_nan":
        if bitpix == -32:
            return _join_fits(cards, struct.pack(">f", math.nan) * n)
        if bitpix == -64:
            return _join_fits(cards, struct.pack(">d", math.nan) * n)
        raise ValueError("all_nan needs a floating-point image")
    raise ValueError(kind)


# --------------------------------------------------------------------------- service


class Request(NamedTuple):
    """One request the service answered, logged before its answer leaves (``status`` None: connection
    dropped, by either side)."""

    t: float  # time.monotonic() at arrival
    stage: str  # form | results | fits | other
    path: str  # path and query as received
    status: int | None
    fault: str | None
    files: tuple[str, ...]


class _Row(NamedTuple):
    idx: int
    survey: str
    ra: float
    dec: float
    pixels: int
    scale: float
    file: str
    sha256: str
    xyz: tuple[float, float, float]


def _unit(ra: float, dec: float) -> tuple[float, float, float]:
    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def _page(title: str, body: str) -> bytes:
    return (f"<html><head><title>{html.escape(title)}</title></head>"
            f"<body>{body}</body></html>\n").encode()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive threads.
    timeout = 5  # bounds reads/writes to a stalled client, so stop() can join

    def do_GET(self) -> None:
        self.server.owner._handle(self)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads
    block_on_close = True

    def handle_error(self, request, client_address) -> None:
        # Clients that give up (timeouts, injected resets) are expected here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class StandInSkyView:
    """Local SkyView serving ``mirror_dir`` (``index.csv`` + gzipped FITS).

    ``faults``: optional :class:`FaultPlan`. ``max_rps``: when set, requests
    beyond that many in the trailing second get HTTP 429 (recorded with fault
    ``"throttled"``). Use as a context manager or call :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        mirror_dir: str | Path,
        faults: FaultPlan | None = None,
        *,
        max_rps: float | None = None,
        match_radius_arcsec: float = 1.0,
    ) -> None:
        self.mirror_dir = Path(mirror_dir)
        self.faults = faults
        self.max_rps = max_rps
        self.match_radius_arcsec = match_radius_arcsec
        self.rows: list[_Row] = []
        with open(self.mirror_dir / "index.csv", newline="") as f:
            for r in csv.DictReader(f):
                ra, dec = float(r["ra_deg"]), float(r["dec_deg"])
                self.rows.append(_Row(len(self.rows), r["survey"], ra, dec, int(r["pixels"]),
                                      float(r["pixel_scale_deg"]), r["file"], r["sha256"],
                                      _unit(ra, dec)))
        self._by_survey: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(self.rows):
            self._by_survey[row.survey].append(i)
        self._form = self._form_page()
        self._lock = threading.Lock()
        self._log: list[Request] = []
        self._recent: list[float] = []  # accepted arrivals, for max_rps
        self._serial = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: file -> number of intact FITS bodies served (sha256 == index).
        self.fits_served: Counter[str] = Counter()

    # -- lifecycle

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("service not started")
        return self._server.server_address[1]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL for ``SkyViewClass.URL``."""
        return self.root + FORM_PATH

    def start(self) -> "StandInSkyView":
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="standin-skyview", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes slow responses and joins all server threads."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> "StandInSkyView":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection

    @property
    def requests(self) -> list[Request]:
        """Snapshot of every request answered so far, in completion order."""
        with self._lock:
            return list(self._log)

    def count(self, stage: str | None = None, status: int | None | str = "any") -> int:
        """Number of requests at ``stage`` (any if None) with ``status`` ("any")."""
        return sum(1 for r in self.requests
                   if (stage is None or r.stage == stage) and (status == "any" or r.status == status))

    def peak_rate(self, window_s: float = 1.0, stage: str | None = None) -> int:
        """Most requests (at ``stage``) that arrived within any ``window_s`` span."""
        ts = sorted(r.t for r in self.requests if stage is None or r.stage == stage)
        best = lo = 0
        for hi, t in enumerate(ts):
            while t - ts[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def lookup(self, survey: str, ra: float, dec: float) -> _Row | None:
        """The index row of ``survey`` nearest (ra, dec) within the match radius."""
        v = _unit(ra, dec)
        best, best_chord = None, math.inf
        for i in self._by_survey.get(survey, ()):
            w = self.rows[i].xyz
            chord = math.dist(v, w)
            if chord < best_chord:
                best, best_chord = self.rows[i], chord
        if best is None:
            return None
        sep = math.degrees(2 * math.asin(min(best_chord / 2, 1.0))) * 3600
        return best if sep <= self.match_radius_arcsec else None

    # -- pages

    def _form_page(self) -> bytes:
        groups = {"Radio:GHz": sorted(self._by_survey)}
        groups.update(_EXTRA_SURVEYS)
        selects = "".join(
            f'<select name="survey" id="{html.escape(gid)}" multiple size="4">'
            + "".join(f"<option>{html.escape(s)}</option>" for s in names)
            + "</select>\n"
            for gid, names in groups.items())

        def select(name: str, options: list[str], default: str) -> str:
            opts = "".join(f"<option{' selected' if o == default else ''}>{o}</option>"
                           for o in options)
            return f'<select name="{name}">{opts}</select>\n'

        # Defaults mimic SkyView's (notably pixels=300): astroquery submits
        # them for every parameter the caller leaves as None.
        body = (
            '<h1>SkyView Query Form (local stand-in)</h1>\n'
            '<form method="get" action="../cgi/runquery.pl" name="form1">\n'
            '<input type="text" name="Position" value="" size="40">\n'
            + selects
            + select("coordinates", ["J2000", "B1950", "Galactic", "ICRS"], "J2000")
            + select("projection", ["Tan", "Car", "Sin", "Ait"], "Tan")
            + select("scaling", ["Log", "Sqrt", "Linear", "HistEq", "LogLog"], "Log")
            + '<input type="text" name="pixels" value="300">\n'
            '<input type="submit" value="Submit"><input type="reset" value="Reset">\n'
            "</form>")
        return _page("SkyView Query Form", body)

    def _match(self, q: dict[str, list[str]]) -> tuple[list[tuple[str, _Row | str]], str | None]:
        """[(survey, row or reason)], or an error message for the whole query."""
        pos = (q.get("Position") or [""])[0]
        try:
            ra, dec = (float(x) for x in re.split(r"[\s,]+", pos.strip()))
        except ValueError:
            return [], f"Unable to parse or resolve position {pos!r}"
        surveys = [s for s in q.get("survey", []) if s]
        if not surveys:
            return [], "No survey selected"
        coords = (q.get("coordinates") or ["J2000"])[0]
        proj = (q.get("projection") or ["Tan"])[0]
        out: list[tuple[str, _Row | str]] = []
        for s in surveys:
            if coords not in ("J2000", "ICRS", "Equatorial", ""):
                out.append((s, f"mirror holds J2000 positions only, not {coords}"))
                continue
            if proj not in ("Tan", ""):
                out.append((s, f"mirror holds Tan projections only, not {proj}"))
                continue
            row = self.lookup(s, ra, dec)
            if row is None:
                out.append((s, "no mirrored image at this position"))
                continue
            why = _size_mismatch(row, q)
            out.append((s, why if why else row))
        return out, None

    def _results_page(self, matched: list[tuple[str, _Row | str]], error: str | None) -> bytes:
        if error:
            return _page("SkyView error", f"<h2>Error</h2><p>{html.escape(error)}</p>")
        with self._lock:
            self._serial += 1
            serial = self._serial
        rows = []
        for k, (survey, hit) in enumerate(matched, start=1):
            if isinstance(hit, str):
                rows.append(f"<tr><td>{html.escape(survey)}</td><td>No data: {html.escape(hit)}</td></tr>")
            else:
                href = f"../../tempspace/fits/skv{serial}{hit.idx:05d}_{k}.fits"
                rows.append(f'<tr><td>{html.escape(survey)}</td><td><a href="{href}">FITS</a></td></tr>')
        return _page("SkyView Query Results", "<table>" + "".join(rows) + "</table>")

    # -- request handling

    def _handle(self, h: _Handler) -> None:
        arrival = time.monotonic()
        parts = urlsplit(h.path)
        q = parse_qs(parts.query, keep_blank_values=True)
        followed = q.pop(_REDIRECT_MARK, None) is not None

        if self.max_rps is not None and not self._admit(arrival):
            self._record(arrival, "other", h.path, 429, "throttled", ())
            self._send(h, 429, "text/html", _page("Too Many Requests", "<h1>429</h1>"))
            return

        stage, files, build = self._route(parts.path, q)
        fault = None
        if self.faults is not None and stage in STAGES and not followed:
            fault = self.faults.decide(stage, files)
        recorded = False

        def commit(status: int | None) -> None:
            # Called before the first byte of the answer leaves: whoever has read an answer
            # finds its request in the log (recording after sending raced with the client).
            nonlocal recorded
            if recorded:
                return
            recorded = True
            self._record(arrival, stage, h.path, status, fault.kind if fault else None, files)

        try:
            status = self._respond(h, fault, build, parts.path, q, commit)
        except OSError:  # the client hung up first (e.g. timed out on a slow answer): log it all the same
            commit(None)
            return
        commit(status)
        if stage == "fits" and status == 200 and (fault is None or fault.kind in ("slow",)):
            with self._lock:  # counted once the whole body has left
                self.fits_served[files[0]] += 1

    def _admit(self, now: float) -> bool:
        with self._lock:
            self._recent = [t for t in self._recent if now - t < 1.0]
            if len(self._recent) >= self.max_rps:  # type: ignore[operator]
                return False
            self._recent.append(now)
            return True

    def _route(self, path: str, q: dict[str, list[str]]
               ) -> tuple[str, tuple[str, ...], Callable[[], tuple[int, str, bytes]]]:
        if path == FORM_PATH:
            return "form", (), lambda: (200, "text/html", self._form)
        if path == RESULTS_PATH:
            matched, error = self._match(q)
            files = tuple(hit.file for _, hit in matched if not isinstance(hit, str))
            return "results", files, lambda: (200, "text/html", self._results_page(matched, error))
        m = _FITS_RE.match(path)
        if m:
            idx = int(m.group(2))
            if idx < len(self.rows):
                row = self.rows[idx]
                src = str(self.mirror_dir / row.file)
                return "fits", (row.file,), lambda: (200, "application/fits", _read_gz(src))
            return "fits", (), lambda: (404, "text/html", _page("Not Found", "<h1>404</h1>"))
        return "other", (), lambda: (404, "text/html", _page("Not Found", "<h1>404</h1>"))

    def _respond(self, h: _Handler, fault: Fault | None, build, path: str,
                 q: dict[str, list[str]], commit: Callable[[int | None], None]) -> int | None:
        kind = fault.kind if fault else None
        if kind == "slow":
            self._stopping.wait(fault.delay_s)  # type: ignore[union-attr]
        if kind == "reset":
            commit(None)
            _drop(h)
            return None
        if kind == "redirect":
            commit(302)
            h.send_response(302)
            h.send_header("Location", path + "?" + urlencode({**q, _REDIRECT_MARK: ["1"]}, doseq=True))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return 302
        if kind in ("http_500", "http_503", "http_404"):
            status, ctype, body = int(kind[-3:]), "text/html", _page(f"Error {kind[-3:]}", f"<h1>{kind[-3:]}</h1>")
        elif kind == "html_200":
            status, ctype, body = 200, "text/html", _page(
                "SkyView error", "<h2>Error</h2><p>Internal error in SkyView; try again later.</p>")
        else:
            status, ctype, body = build()
        if status == 200 and kind in ("wrong_shape", "all_nan", "all_zero"):
            body = _faulty_fits(body, kind)
        elif status == 200 and kind == "truncated":
            body = body[: len(body) // 2]
        commit(status)
        if status == 200 and kind == "dropped":  # promise the full length, send half, then drop the connection
            self._send(h, status, ctype, body, sent=len(body) // 2)
            _drop(h)
        else:
            self._send(h, status, ctype, body)
        return status

    @staticmethod
    def _send(h: _Handler, status: int, ctype: str, body: bytes, sent: int | None = None) -> None:
        """Answer ``body`` (only its first ``sent`` bytes, if given, under the full Content-Length)."""
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[:sent])

    def _record(self, t: float, stage: str, path: str, status: int | None,
                fault: str | None, files: tuple[str, ...]) -> None:
        with self._lock:
            self._log.append(Request(t, stage, path, status, fault, files))


def _drop(h: _Handler) -> None:
    """Close the connection with an RST: what a dropped or refused connection looks like."""
    h.wfile.flush()
    h.close_connection = True
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()


def _size_mismatch(row: _Row, q: dict[str, list[str]]) -> str | None:
    """Why the mirrored cutout does not fit the requested pixels/size, or None."""
    pix = (q.get("pixels") or [""])[0]
    if pix:
        try:
            dims = [int(float(p)) for p in pix.split(",")]
        except ValueError:
            return f"bad pixels {pix!r}"
        if any(d != row.pixels for d in dims):
            return f"mirror holds {row.pixels}x{row.pixels} pixels, not {pix}"
    size = (q.get("size") or q.get("imscale") or [""])[0]
    if size:
        want = row.pixels * row.scale
        try:
            sizes = [float(s) for s in size.split(",")]
        except ValueError:
            return f"bad size {size!r}"
        if any(abs(s - want) > 0.01 * want for s in sizes):
            return f"mirror holds {want:g} deg fields, not {size}"
    return None


if __name__ == "__main__":  # manual load checks: python tests/skyview_standin.py MIRROR
    with StandInSkyView(sys.argv[1] if len(sys.argv) > 1 else "../shared/skyview-mirror") as svc:
        print(svc.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
