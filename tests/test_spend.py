"""Prices, the plan's money, and ``--max-cost`` against the fake provider server."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from mixdown.cli import main
from mixdown.errors import ConfigError, MixdownError
from mixdown.loader import load_show
from mixdown.plan.spend import Bill, Budget, parse_bill, parse_budget, price_of, prices_for
from mixdown.settings import PRICES, Price
from mixdown.show.project import load

from .fakeserver import KEY, FakeSpeechServer, elevenlabs_show
from .test_build import doit, ran

LINES = 20


def line(n: int) -> str:
    return f"This is line number {n} of the news, read aloud for the test."


def write_show(root: Path, url: str, price: str = 'price = { per = "request", usd = 0.10 }') -> Path:
    (root / "stanzas").mkdir(exist_ok=True)
    (root / "project.toml").write_text(elevenlabs_show(url, f"concurrency = 4\nmax_retries = 0\n{price}"))
    (root / "stanzas" / "news.j2").write_text("## main\n" + "\n\n".join(line(n) for n in range(LINES)) + "\n")
    return root


@pytest.fixture
def server() -> FakeSpeechServer:
    with FakeSpeechServer(latency=0.05) as fake:
        yield fake


@pytest.fixture
def show(tmp_path: Path, server: FakeSpeechServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    monkeypatch.delenv("MIXDOWN_MAX_COST", raising=False)
    return write_show(tmp_path, server.url)


def objects(root: Path) -> list[Path]:
    """The voice lines in the show's cache."""
    records = (root / "cache" / "objects").rglob("*.json") if (root / "cache").exists() else []
    return [p for p in records if json.loads(p.read_text()).get("kind") == "voice"]


# --- bills and prices ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bill"),
    [
        ("42 characters", Bill(42, "characters")),
        ("2.5 s of audio", Bill(2.5, "seconds")),
        ("3 minutes", Bill(180, "seconds")),
        ("one generation (2 clips)", Bill(1, "requests")),
        ("one generation (the model picks its length)", Bill(1, "requests")),
        ("7 requests", Bill(7, "requests")),
        ("local, no charge", None),
        ("some credits", None),
    ],
)
def test_bills_are_read_in_the_words_renderers_write_them(text: str, bill: Bill | None) -> None:
    assert parse_bill(text) == bill


def test_default_prices_cover_each_kind_a_provider_bills() -> None:
    eleven = PRICES["elevenlabs"]
    assert price_of(Bill(1000, "characters"), "voice", eleven) == pytest.approx(0.10)
    assert price_of(Bill(2500, "characters"), "voice", eleven) == pytest.approx(0.25)
    # a sound effect costs one generation whatever its length; music goes by the minute
    assert price_of(Bill(2.5, "seconds"), "sfx", eleven) == pytest.approx(0.12)
    assert price_of(Bill(30, "seconds"), "music", eleven) == pytest.approx(0.15)
    assert price_of(Bill(1, "requests"), "music", eleven) is None  # the model picks the length
    assert price_of(Bill(190, "seconds"), "music", PRICES["stability"]) == pytest.approx(0.20)
    assert price_of(Bill(4096, "characters"), "voice", PRICES["openai"]) == pytest.approx(0.06144)
    assert price_of(Bill(1, "requests"), "music", ()) is None


def test_a_price_for_one_kind_wins_over_one_for_every_kind() -> None:
    prices = (Price("second", 0.01), Price("minute", 1.2, "music"))
    assert price_of(Bill(30, "seconds"), "music", prices) == pytest.approx(0.6)
    assert price_of(Bill(30, "seconds"), "sfx", prices) == pytest.approx(0.3)


def test_a_shows_prices_replace_the_providers_defaults(tmp_path: Path) -> None:
    root = write_show(
        tmp_path,
        "http://127.0.0.1:9",
        'price = [{ per = "1m_chars", usd = 50 }, { per = "minute", usd = 0.6, kind = "music" }]',
    )
    project = load(root)
    prices = prices_for(project, "elevenlabs")
    assert price_of(Bill(1000, "characters"), "voice", prices) == pytest.approx(0.05)
    assert price_of(Bill(30, "seconds"), "music", prices) == pytest.approx(0.3)
    assert price_of(Bill(4, "seconds"), "sfx", prices) is None  # the default's is not used
    assert prices_for(project, "openai") == PRICES["openai"]
    assert project.providers["elevenlabs"].get("price") is None  # not a connection setting


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ('price = { per = "word", usd = 1 }', "a price needs per = one of char, 1k_chars"),
        ('price = { per = "request" }', 'a price needs usd = the dollars per "request"'),
        ('price = { per = "request", usd = -1 }', "'usd' = -1 is not allowed; use a number from 0"),
        ('price = { per = "request", usd = "1" }', "'usd' must be an integer or a number"),
        ('price = { per = "request", usd = 1, unit = 2 }', "unknown key 'unit' in a price"),
        ('price = { per = "request", usd = 1, kind = "video" }', "kind must be voice, sfx or music"),
        ("price = 0.3", "price must be a table such as"),
        (
            'price = [{ per = "second", usd = 1 }, { per = "minute", usd = 50 }]',
            "two prices for the same unit and kind",
        ),
    ],
)
def test_a_bad_price_is_one_line_naming_its_line(tmp_path: Path, price: str, message: str) -> None:
    root = write_show(tmp_path, "http://127.0.0.1:9", price)
    number = next(
        n for n, text in enumerate((root / "project.toml").read_text().splitlines(), 1) if "price" in text
    )
    with pytest.raises(ConfigError) as err:
        load(root)
    assert str(err.value).startswith(f"project.toml:{number}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "inf", ""])
def test_a_budget_that_is_not_dollars_is_one_line(text: str) -> None:
    with pytest.raises(MixdownError, match="not an amount of dollars; give one such as 5 or 0.50"):
        parse_budget(text)
    assert parse_budget("$2.50") == 2.5 and parse_budget(" 0 ") == 0.0


def test_a_budget_shared_by_threads_never_grants_more_than_it_holds() -> None:
    budget, granted, lock = Budget(1.0), [], threading.Lock()

    def spend() -> None:
        for _ in range(50):
            try:
                budget.reserve(0.03, "t")
            except MixdownError:
                continue
            with lock:
                granted.append(0.03)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 33 and budget.spent == pytest.approx(0.99)
    budget.release(0.03)
    budget.reserve(0.03, "t")
    with pytest.raises(MixdownError, match=r"t: not rendered: its \$0.03 would pass the budget"):
        budget.reserve(0.03, "t")


# --- mixdown plan ---------------------------------------------------------------------------


def test_plan_shows_each_renders_money_and_the_total(show: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_show(show, "http://127.0.0.1:9", 'price = { per = "1k_chars", usd = 0.30 }')
    assert main(["plan", "-d", str(show)]) == 0
    out = capsys.readouterr().out.splitlines()
    chars = sum(len(line(n)) for n in range(LINES))
    first = next(text for text in out if "voice:news/main/0 " in text)
    assert len(line(0)) == 59 and first.endswith("elevenlabs  59 characters  $0.018")
    assert f"elevenlabs: {LINES} requests, {chars} characters, ${chars * 0.3 / 1000:.2f}" in out
    assert out[-1] == (
        f"total: ${chars * 0.3 / 1000:.2f} for {LINES} paid renders "
        "(list prices of 2026-06 unless [providers.NAME] price sets them)"
    )


def test_plan_says_which_renders_have_no_price(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "stanzas").mkdir()
    (tmp_path / "stanzas" / "a.j2").write_text("## a\nHello there.\n")
    (tmp_path / "project.toml").write_text(
        '[voices.v]\nrenderer = "openai"\n\n[music.bed]\nrenderer = "suno"\nprompt = "calm piano"\n'
        '\n[scripts.a]\ntemplate = "stanzas/a.j2"\nmusic = "bed"\n'
    )
    assert main(["plan", "-d", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "suno: 3 requests, 3 × one generation (2 clips), $0.00 + 3 without a price" in out
    assert "openai: 1 requests, 12 characters, $0.00018" in out
    assert out[-1].endswith("; 3 renders have no price: set [providers.NAME] price for them")


# --- --max-cost in a build ------------------------------------------------------------------


def test_a_build_over_budget_is_refused_before_any_request(show: Path, server: FakeSpeechServer) -> None:
    code, out, err = doit(show, {}, "--max-cost", "1.95", "-n", "4", "-P", "thread")
    assert code != 0
    assert (
        "--max-cost $1.95: the 20 paid renders this build needs would cost $2.00; nothing was rendered"
        in out + err
    )
    assert sum(server.attempts.values()) == 0 and objects(show) == []

    code, out, err = doit(show, {}, "--max-cost", "2", "-n", "4", "-P", "thread")
    assert code == 0, out + err
    assert sum(server.attempts.values()) == LINES and len(objects(show)) == LINES


def test_a_build_stops_paying_at_the_budget_and_fails_the_rest_one_line_each(
    show: Path, server: FakeSpeechServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXDOWN_MAX_COST", "0.75")
    code, out, err = doit(show, {}, "-n", "4", "-P", "thread", "--continue", "voice")
    report = out + err
    assert code != 0
    assert sum(server.attempts.values()) == 7 and len(objects(show)) == 7  # 7 × $0.10 ≤ $0.75
    refused = [text for text in report.splitlines() if "would pass the budget" in text]
    assert len(refused) == LINES - 7
    assert all(
        " not rendered: its $0.10 would pass the budget (--max-cost $0.75, $0.70 spent)" in t for t in refused
    )
    assert KEY not in report

    # what is cached costs nothing: the rest of the show fits a budget of $1.30
    code, out, err = doit(show, {}, "--max-cost", "1.30", "-n", "4", "-P", "thread")
    assert code == 0, out + err
    assert sum(server.attempts.values()) == LINES and sorted(server.attempts.values()) == [1] * LINES
    assert len([t for t in ran(out) if t.startswith("voice:")]) == LINES - 7


def test_a_failed_request_gives_its_reservation_back(show: Path, server: FakeSpeechServer) -> None:
    server.faults = {line(0): ["500"], line(1): ["500"]}  # max_retries = 0: each fails once
    code, out, err = doit(show, {}, "-n", "2", "-P", "thread", "--continue", "--max-cost", "0.50", "voice")
    assert code != 0
    assert sum(server.served.values()) == 5  # the two failures did not use the budget up
    assert sum(server.attempts.values()) == 7
    assert len(objects(show)) == 5


def test_a_budget_needs_a_price_for_every_paid_render(show: Path, server: FakeSpeechServer) -> None:
    (show / "project.toml").write_text(
        (show / "project.toml")
        .read_text()
        .replace("[voices.narrator]", '[music.x]\nrenderer = "suno"\nprompt = "calm"\n\n[voices.narrator]')
        .replace('template = "', 'music = "x"\ntemplate = "')
    )
    code, out, err = doit(show, {}, "--max-cost", "100")
    assert code != 0
    assert (
        "music:x/intro: no price for what the 'suno' provider bills (one generation (2 clips)); "
        'set [providers.suno] price = { per = "request", usd = … } in project.toml, or build without --max-cost'
        in out
        + err
    )
    assert sum(server.attempts.values()) == 0


def test_without_a_budget_nothing_is_priced(show: Path, server: FakeSpeechServer) -> None:
    assert "MIXDOWN_MAX_COST" not in os.environ
    code, out, err = doit(show, {}, "-n", "4", "-P", "thread")
    assert code == 0, out + err
    assert sum(server.attempts.values()) == LINES
    assert load_show(show).context.budget is None


def test_a_budget_that_is_not_dollars_fails_the_build_in_one_line(
    show: Path, server: FakeSpeechServer
) -> None:
    code, out, err = doit(show, {}, "--max-cost", "five")
    assert code != 0 and sum(server.attempts.values()) == 0
    errors = [text for text in (out + err).splitlines() if "not an amount of dollars" in text]
    assert errors == [
        "ERROR: --max-cost (or MIXDOWN_MAX_COST) 'five': not an amount of dollars; give one such as 5 or 0.50"
    ]
