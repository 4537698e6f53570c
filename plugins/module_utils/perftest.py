# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The figures of a perftest run (ib_send_lat, ib_write_bw, ...).

perftest 4.5 writes a machine-readable report with ``--out_json --out_json_file=F``,
but what it writes is not JSON: keys and most strings are unquoted and every value ends
with a comma (captured from the lab's Debian 12 guests, tests/unit/fixtures/rdma/). Older
perftest has no such report. So both are read: the report when there is one, else the
result table perftest prints on stdout (the same in every version: a '#bytes ...' header
line and one line of figures per message size).

Bandwidth: perftest's 'MB/sec' is MiB/s (2^20 bytes; its --help says so), and
--report_gbits gives Gbit/s (10^9 bits); both become Mbit/s (10^6 bits) here, the unit
iperf3's figures use, so RDMA and TCP read side by side.
"""

from __future__ import annotations

import json
import re

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError


class PerftestError(InputError):
    """Output that holds no perftest result."""


_HEADER_TOKEN = re.compile(r"#\w+|[\w.%]+(?: \w+)?\[[^\]]*\]|[\w.%]+")
_KEY_VALUE = re.compile(r'^\s*"?([A-Za-z0-9_.%]+)"?\s*:\s*(.*?)\s*,?\s*$')
MIB_MBIT = 2 ** 20 * 8 / 1e6
_FAILED = re.compile(r"^.*(?:Completion with error|Failed to complete|Couldn't connect|Unable to).*$", re.M)

# Column header (text table) and report key (--out_json) -> figure name.
_LAT_COLUMNS = {
    "#bytes": "msg_bytes", "MsgSize": "msg_bytes", "#iterations": "iterations", "n_iterations": "iterations",
    "t_min[usec]": "t_min_us", "t_min": "t_min_us", "t_max[usec]": "t_max_us", "t_max": "t_max_us",
    "t_typical[usec]": "t_typical_us", "t_typical": "t_typical_us", "t_avg[usec]": "t_avg_us", "t_avg": "t_avg_us",
    "t_stdev[usec]": "t_stdev_us", "t_stdev": "t_stdev_us",
    "99% percentile[usec]": "p99_us", "percentile_99": "p99_us",
    "99.9% percentile[usec]": "p99_9_us", "percentile_99.9": "p99_9_us",
}
_BW_COLUMNS = {
    "#bytes": "msg_bytes", "MsgSize": "msg_bytes", "#iterations": "iterations", "n_iterations": "iterations",
    "BW peak[MB/sec]": "bw_peak_mib", "BW average[MB/sec]": "bw_avg_mib",
    "BW peak[Gb/sec]": "bw_peak_gbit", "BW average[Gb/sec]": "bw_avg_gbit",
    "MsgRate[Mpps]": "msg_rate_mpps", "MsgRate": "msg_rate_mpps",
}


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() and "." not in str(text) else value


def parse_report(text):
    """perftest's --out_json report as {section: {key: value}} (real JSON is read too)."""
    text = (text or "").strip()
    if not text:
        raise PerftestError("the --out_json report is empty")
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    report, stack = {}, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith("{"):
            name = stripped[:-1].strip().rstrip(":").strip().strip('"')
            section = {}
            (stack[-1] if stack else report)[name or "report"] = section
            stack.append(section)
        elif stripped.startswith("}"):
            if stack:
                stack.pop()
        elif stack:
            match = _KEY_VALUE.match(stripped)
            if match:
                raw = match.group(2).strip().strip('"')
                number = _number(raw)
                stack[-1][match.group(1)] = raw if number is None else number
    if not report:
        raise PerftestError(f"the --out_json report has no section: {text[:80]!r}")
    # perftest wraps everything in one unnamed object.
    return report.get("report", report)


def parse_table(text):
    """The result rows of perftest's stdout: [{column header: number}]."""
    lines = (text or "").splitlines()
    rows, header = [], None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#bytes"):
            header = _HEADER_TOKEN.findall(stripped)
            continue
        if header is None or not stripped or stripped.startswith("-"):
            if stripped.startswith("-") and rows:
                header = None
            continue
        values = stripped.split()
        numbers = [_number(value) for value in values]
        if len(values) >= len(header) and all(n is not None for n in numbers[:len(header)]):
            rows.append(dict(zip(header, numbers)))
    return rows


def _figures(row, columns):
    figures = {}
    for key, value in row.items():
        name = columns.get(key)
        if name and isinstance(value, (int, float)):
            figures[name] = value
    return figures


def _bandwidth_mbps(figures):
    for unit, factor in (("mib", MIB_MBIT), ("gbit", 1000.0)):
        for kind in ("avg", "peak"):
            key = f"bw_{kind}_{unit}"
            if key in figures:
                figures[f"bw_{kind}_mbps"] = round(figures.pop(key) * factor, 3)
    return figures


def perftest_figures(kind, stdout, report=""):
    """Figures of one run: ``kind`` 'lat' or 'bw'; the --out_json report first, else stdout's table.

    Latency: msg_bytes, iterations, t_min_us, t_typical_us, t_avg_us, t_max_us, t_stdev_us,
    p99_us, p99_9_us. Bandwidth: msg_bytes, iterations, bw_peak_mbps, bw_avg_mbps,
    msg_rate_mpps. Raises PerftestError when neither holds a result.
    """
    if kind not in ("lat", "bw"):
        raise PerftestError(f"kind must be lat or bw, got {kind!r}")
    columns = _LAT_COLUMNS if kind == "lat" else _BW_COLUMNS
    # A run that broke prints the rows it finished, then why it stopped (a completion
    # error, 'Failed to complete run_iter_bw ...'): those rows are not its result.
    broken = _FAILED.search(stdout or "")
    if broken:
        raise PerftestError(f"the run failed: {broken.group(0).strip()[:160]!r}")
    figures = {}
    if (report or "").strip():
        try:
            results = parse_report(report).get("results")
        except PerftestError:
            results = None
        if isinstance(results, dict):
            figures = _figures(results, columns)
            if kind == "bw" and "BW_average" in results:
                # The report's BW keys carry no unit: MiB/s, or Gbit/s with --report_gbits
                # (then its test_info says so); stdout's header tells which when present.
                gbits = "Gb/sec" in (stdout or "")
                figures["bw_avg_gbit" if gbits else "bw_avg_mib"] = results["BW_average"]
                if "BW_peak" in results:
                    figures["bw_peak_gbit" if gbits else "bw_peak_mib"] = results["BW_peak"]
    if not figures:
        rows = parse_table(stdout)
        if not rows:
            text = (stdout or "").strip().splitlines()
            last = text[-1] if text else "nothing"
            raise PerftestError(f"no result table in the output (last line: {last[:160]!r})")
        figures = _figures(rows[-1], columns)
    if kind == "bw":
        figures = _bandwidth_mbps(figures)
    if "iterations" not in figures or not figures["iterations"]:
        raise PerftestError(f"the result has no iterations: {figures}")
    return figures
