"""The bench harness's own logic (bench/harness): reading wrk's output, ratios against
targets, the tables and the results file. Nothing here runs wrk or times anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.harness.report import (
    BEGIN,
    END,
    AbsoluteCheck,
    Check,
    Report,
    Run,
    checks_table,
    cpu_note,
    fmt_number,
    markdown_table,
    ratio,
    render,
    runs_table,
    splice,
    write_results,
)
from bench.harness.scenarios import Sample, busy_window, rate, write_sheet
from bench.harness.wrk import (
    Load,
    WrkOutputError,
    WrkResult,
    parse_count,
    parse_time,
    parse_time_ms,
    parse_wrk,
    wrk_command,
)

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:3000/api/orders
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.22ms    1.01ms  22.16ms   89.07%
    Req/Sec     6.17k   522.77     6.73k    88.00%
  Latency Distribution
     50%    5.03ms
     75%    5.43ms
     90%  612.00us
     99%    1.20s
  61439 requests in 10.00s, 8.91MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:   6143.12
Transfer/sec:      0.89MB
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5.6us", 5.6e-6),
        ("1.2ms", 1.2e-3),
        ("3.4s", 3.4),
        ("1.00m", 60.0),
        ("2h", 7200.0),
        (" 22.16ms ", 22.16e-3),
    ],
)
def test_wrk_times_in_every_unit(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds)


def test_milliseconds_from_each_unit() -> None:
    assert parse_time_ms("5.6us") == pytest.approx(0.0056)
    assert parse_time_ms("1.2ms") == pytest.approx(1.2)
    assert parse_time_ms("3.4s") == pytest.approx(3400.0)


@pytest.mark.parametrize(
    ("text", "count"),
    [("812", 812.0), ("6.17k", 6170.0), ("1.2k req/s", 1200.0), ("3.1M", 3_100_000.0)],
)
def test_wrk_counts_with_metric_suffixes(text: str, count: float) -> None:
    assert parse_count(text) == pytest.approx(count)


@pytest.mark.parametrize("text", ["", "ms", "1.2 parsecs", "fast", "-1ms"])
def test_what_is_not_a_wrk_time_is_refused(text: str) -> None:
    with pytest.raises(WrkOutputError):
        parse_time(text)


def test_a_whole_wrk_run_is_read() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 61439
    assert result.seconds == pytest.approx(10.0)
    assert result.rps == pytest.approx(6143.12)
    assert result.p50_ms == pytest.approx(5.03)
    assert result.p75_ms == pytest.approx(5.43)
    assert result.p90_ms == pytest.approx(0.612)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.non_2xx == 12
    assert result.socket_errors == 5
    assert result.errors == 17


def test_a_run_of_a_minute_and_no_errors() -> None:
    output = WRK_OUTPUT.replace("in 10.00s", "in 1.00m")
    output = output.replace("  Socket errors: connect 0, read 2, write 0, timeout 3\n", "")
    output = output.replace("  Non-2xx or 3xx responses: 12\n", "")
    result = parse_wrk(output)
    assert result.seconds == pytest.approx(60.0)
    assert result.errors == 0


def test_output_without_the_latency_distribution_is_an_error() -> None:
    output = "\n".join(line for line in WRK_OUTPUT.splitlines() if "%" not in line[:8])
    with pytest.raises(WrkOutputError, match="50%"):
        parse_wrk(output)


def test_an_empty_output_is_an_error() -> None:
    with pytest.raises(WrkOutputError, match="requests"):
        parse_wrk("unable to connect to 127.0.0.1:3000 Connection refused\n")


def test_the_wrk_command_pins_to_the_load_cpu() -> None:
    command = wrk_command(
        "http://127.0.0.1:1/x", Load("get.lua", {}), seconds=7, connections=32, cpu=1
    )
    assert command[:3] == ["taskset", "-c", "1"]
    assert "-c32" in command and "-d7s" in command and "--latency" in command
    assert command[-1] == "http://127.0.0.1:1/x"
    assert command[command.index("-s") + 1].endswith("bench/lua/get.lua")
    unpinned = wrk_command("http://h/", Load("get.lua", {}), seconds=1, connections=1, cpu=None)
    assert unpinned[0] == "wrk"


def test_the_lua_scripts_named_by_the_scenarios_exist() -> None:
    lua = Path(__file__).resolve().parents[2] / "bench" / "lua"
    for script in ("common.lua", "create.lua", "get.lua", "get_path.lua", "mix.lua"):
        assert (lua / script).is_file(), script


# -- ratios and targets ------------------------------------------------------------------


def test_ratio_divides_and_knows_when_it_cannot() -> None:
    assert ratio(50.0, 200.0) == pytest.approx(0.25)
    assert ratio(1.0, 0.0) is None


def test_an_at_least_target() -> None:
    met = Check("get", 600.0, 1000.0, "req/s", limit=0.5)
    missed = Check("get", 400.0, 1000.0, "req/s", limit=0.5)
    assert met.ratio == pytest.approx(0.6) and met.met is True
    assert missed.met is False
    assert met.target == "≥ 0.5x"


def test_an_at_most_target() -> None:
    check = Check("p99", 130.0, 100.0, "ms", limit=1.2, at_least=False)
    assert check.met is False
    assert Check("p99", 110.0, 100.0, "ms", limit=1.2, at_least=False).met is True
    assert check.target == "≤ 1.2x"


def test_exactly_at_the_limit_meets_it() -> None:
    assert Check("x", 25.0, 100.0, "req/s", limit=0.25).met is True
    assert Check("x", 150.0, 100.0, "ms", limit=1.5, at_least=False).met is True


def test_a_figure_without_target_is_neither_met_nor_missed() -> None:
    assert Check("health", 1.0, 2.0, "req/s").met is None
    assert Check("health", 1.0, 2.0, "req/s").target == "-"


def test_a_ratio_without_baseline_misses_its_target() -> None:
    assert Check("x", 5.0, 0.0, "req/s", limit=0.5).met is False


def test_an_absolute_bound() -> None:
    assert AbsoluteCheck("backlog", 0, "deliveries", 0).met is True
    assert AbsoluteCheck("backlog", 3, "deliveries", 0).met is False


# -- tables and the results file ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(12345.6, "12,346"), (123.45, "123.5"), (1.234, "1.23"), (0.1234, "0.123"), (0, "0.000")],
)
def test_numbers_are_shown_with_sensible_precision(value: float, text: str) -> None:
    assert fmt_number(value) == text


def test_markdown_table_aligns_numbers_right() -> None:
    table = markdown_table(["a", "b", "c"], [["x", "y", "1"]])
    assert table.splitlines() == ["| a | b | c |", "| --- | --- | ---: |", "| x | y | 1 |"]


def _result(rps: float, p50: float, p99: float) -> WrkResult:
    return WrkResult(
        requests=int(rps * 10),
        seconds=10.0,
        rps=rps,
        p50_ms=p50,
        p75_ms=p50,
        p90_ms=p99,
        p99_ms=p99,
        non_2xx=1,
    )


def test_the_runs_table_has_one_row_per_run() -> None:
    table = runs_table(
        [
            Run("create", "orderhub", _result(165.0, 150.0, 285.0), "worker on", 9.9),
            Run("get", "orderhub", _result(550.0, 50.0, 126.0)),
        ]
    ).splitlines()
    assert table[0].startswith("| scenario | server | req/s | p50 ms | p99 ms |")
    assert table[0].endswith("| CPU ms/req | note |")
    assert table[2] == "| create | orderhub | 165.0 | 150.0 | 285.0 | 1650 | 1 | 6.00 | worker on |"
    assert table[3] == "| get | orderhub | 550.0 | 50.00 | 126.0 | 5500 | 1 | - |  |"


def test_the_cpu_ratio_reads_like_the_rate_ratio() -> None:
    hub = Run("get", "orderhub", _result(100.0, 1.0, 2.0), cpu_seconds=4.0)  # 4 ms/request
    base = Run("get", "bare", _result(1000.0, 1.0, 2.0), cpu_seconds=10.0)  # 1 ms/request
    assert hub.cpu_ms_per_request == pytest.approx(4.0)
    assert cpu_note(hub, base) == "by CPU time per request: 0.25x"
    assert cpu_note(Run("get", "x", _result(1.0, 1.0, 1.0)), base) == ""


def test_the_checks_table_shows_ratio_target_and_verdict() -> None:
    rows = checks_table(
        [
            Check("create", 165.0, 4487.0, "req/s", limit=0.25),
            AbsoluteCheck("backlog after 10 s", 12, "deliveries", 0),
        ]
    ).splitlines()
    assert rows[2] == "| create | 165.0 / 4,487 req/s | 0.04x | ≥ 0.25x | **missed** |  |"
    assert (
        rows[3]
        == "| backlog after 10 s | 12.00 deliveries | - | ≤ 0.000 deliveries | **missed** |  |"
    )


def test_render_names_the_context_and_every_section() -> None:
    report = Report(
        runs=[Run("get", "orderhub", _result(550.0, 50.0, 126.0))],
        checks=[Check("get", 550.0, 7962.0, "req/s", limit=0.5)],
        figures=[("backlog", "0")],
        notes=["re-ran get: disturbed"],
    )
    text = render(report, heading="Latest run", context=[("python", "3.11.7")])
    assert text.startswith("## Latest run\n")
    assert "- **python:** 3.11.7" in text
    for section in ("### wrk runs", "### Targets", "### Other figures", "### Notes"):
        assert section in text
    assert "- re-ran get: disturbed" in text


def test_splice_replaces_only_the_run_block() -> None:
    document = f"# Results\n\nintro\n\n{BEGIN}\nold run\n{END}\n\n## Optimisations\n\nkept\n"
    spliced = splice(document, "new run")
    assert "old run" not in spliced
    assert f"{BEGIN}\nnew run\n{END}" in spliced
    assert spliced.startswith("# Results\n\nintro\n")
    assert spliced.endswith("## Optimisations\n\nkept\n")


def test_splice_adds_the_block_under_the_title_the_first_time() -> None:
    spliced = splice("# Results\n\n## Optimisations\n", "run")
    assert spliced == f"# Results\n\n{BEGIN}\nrun\n{END}\n\n## Optimisations\n"


def test_write_results_creates_and_then_updates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_results(path, "first")
    path.write_text(path.read_text() + "\n## Log\n\nkept\n")
    write_results(path, "second")
    text = path.read_text()
    assert "second" in text and "first" not in text and text.endswith("kept\n")


# -- rates from delivery samples -----------------------------------------------------------


def _sample(at: float, delivered: int, pending: int) -> Sample:
    return Sample(
        at,
        {
            "delivered": delivered,
            "pending": pending,
            "sheets:delivered": delivered,
            "sheets:pending": pending,
        },
    )


def test_rate_is_per_second_between_first_and_last_sample() -> None:
    samples = [_sample(10.0, 0, 100), _sample(12.0, 40, 60), _sample(14.0, 100, 0)]
    assert rate(samples, "delivered") == pytest.approx(25.0)
    assert rate(samples[:1], "delivered") == 0.0


def test_the_busy_window_skips_start_up_and_the_idle_tail() -> None:
    samples = [
        _sample(0.0, 0, 100),
        _sample(1.0, 0, 100),
        _sample(2.0, 50, 50),
        _sample(3.0, 100, 0),
        _sample(4.0, 100, 0),
    ]
    window = busy_window(samples, "sheets")
    assert [s.at for s in window] == [1.0, 2.0, 3.0]
    assert rate(window, "sheets:delivered") == pytest.approx(50.0)
    assert busy_window([_sample(0.0, 0, 5)], None) == []


def test_the_sheet_for_the_update_drain_has_the_orders_on_top_at_version_0(
    tmp_path: Path,
) -> None:
    import csv

    from orderhub.delivery.integrations.base import SHEET_COLUMNS

    path = tmp_path / "sheets" / "orders.csv"
    first = ["0190c1a0-0000-7000-8000-000000000001", "0190c1a0-0000-7000-8000-000000000002"]
    write_sheet(path, 3, first=first)
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    assert records[0] == list(SHEET_COLUMNS)
    assert [r[0] for r in records[1:3]] == first
    assert [r[-1] for r in records[1:]] == ["0", "0", "2", "2", "2"]
    assert all(len(r) == len(SHEET_COLUMNS) for r in records)
    assert len({r[0] for r in records[1:]}) == 5
