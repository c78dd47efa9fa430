"""The benchmark's table: figure, value, target, met? (and the rows built from ``results.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    value: str
    target: str
    met: bool | None  # None: reported, no target

    @property
    def verdict(self) -> str:
        return "-" if self.met is None else ("yes" if self.met else "NO")


def _ms(v: Any) -> str:
    return "n/a" if v is None else f"{v:.0f} ms" if abs(v) >= 10 else f"{v:.1f} ms"


def rows(r: dict[str, Any]) -> list[Row]:
    """One row per figure, in the order the benchmark reports them (a section absent: no row)."""
    ttft_ms = r["options"]["ttft_s"] * 1000
    return [row for section in _SECTIONS for row in section(r, ttft_ms)]


def _latency_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    lat = r.get("latency")
    if lat:
        p, b = lat["project"], lat["baseline"]
        ok = lat.get("added_median_ms") is not None and lat["added_median_ms"] < 0.1 * ttft_ms
        out.append(
            Row(
                f"1. Added latency, median ({p['n']} + {b['n']} turns, interleaved)",
                f"+{_ms(lat.get('added_median_ms'))}: {_ms(p['median_ms'])} vs baseline {_ms(b['median_ms'])}"
                f" (x{lat.get('ratio_median')})",
                f"< {0.1 * ttft_ms:.0f} ms (10% of {ttft_ms:.0f} ms TTFT)",
                ok and not lat["failed_turns"],
            )
        )
        out.append(
            Row(
                "   Added latency, p95",
                f"+{_ms(lat.get('added_p95_ms'))}: {_ms(p['p95_ms'])} vs baseline {_ms(b['p95_ms'])}"
                f" (x{lat.get('ratio_p95')})",
                "reported",
                None,
            )
        )
    return out


def _partial_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    """Issue 15's targets: the ratios to the direct server with and without partial prompts, the
    replies when the final prompt differs, and the tokens generated that nobody heard."""
    out: list[Row] = []
    lat = r.get("latency")
    if lat and lat.get("ratio_median") is not None:
        out.append(
            Row(
                "   Ratio to the direct server, no partial prompts",
                f"x{lat['ratio_median']}",
                "<= x1.05",
                lat["ratio_median"] <= 1.05,
            )
        )
    part = r.get("latency_partials")
    if not part:
        return out
    same, differs = part["same"], part["differs"]
    if same.get("ratio_median") is not None:
        p, b = same["project"], same["baseline"]
        out.append(
            Row(
                f"1p. With partial prompts: final prompt to first text ({p['n']} + {b['n']} turns)",
                f"{_ms(p['median_ms'])} vs direct server {_ms(b['median_ms'])} (x{same['ratio_median']};"
                f" p95 x{same.get('ratio_p95')}); speculations {part['same_speculation']['ended']}",
                "<= x0.5",
                same["ratio_median"] <= 0.5 and not same["failed_turns"],
            )
        )
    out.append(
        Row(
            "1p. Final prompt differs from the last partial",
            f"{differs['project']['n'] - differs['failed_turns'] // 2} of {differs['project']['n']} replies answer the"
            f" final words (x{differs.get('ratio_median')} of the direct server); frames before a final prompt:"
            f" {part['early_frames']}",
            "every reply answers the final words",
            not differs["failed_turns"] and not part["early_frames"],
        )
    )
    out.append(
        Row(
            "1p. Tokens generated and never spoken",
            f"{part['unspoken_share'] * 100:.1f}% ({part['tokens_unspoken']} of"
            f" {part['tokens_unspoken'] + part['tokens_spoken']})",
            "<= 15%",
            part["unspoken_share"] <= 0.15,
        )
    )
    return out


def _latency_unseen_connection_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    miss = r.get("latency_unseen_connection")
    if miss:
        p = miss["project"]
        out.append(
            Row(
                "   ... on a connection this environment has not seen",
                f"+{_ms(miss.get('added_median_ms'))} median, +{_ms(miss.get('added_p95_ms'))} p95 ({p['n']} turns)",
                "reported",
                None,
            )
        )
    return out


def _latency_with_network_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    net = r.get("latency_with_network")
    if net:
        seen, unseen = net["seen"], net["unseen"]
        out.append(
            Row(
                f"   With {net['network_ms']:g} ms per AWS request (in-region network), median",
                f"+{_ms(seen.get('added_median_ms'))} (p95 +{_ms(seen.get('added_p95_ms'))});"
                f" connection not seen: +{_ms(unseen.get('added_median_ms'))}"
                f" (p95 +{_ms(unseen.get('added_p95_ms'))})",
                "reported",
                None,
            )
        )
    return out


def _first_turn_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    first = r.get("first_turn")
    if first:
        for run in first:
            out.append(
                Row(
                    f"   First turn of a fresh process ({run.get('provider', 'openai')}),"
                    f" caller speaks after {run['greeting_s']:g} s",
                    f"{_ms(run.get('first_text_ms'))} (its second turn {_ms(run.get('second_text_ms'))})",
                    "reported",
                    None if run.get("replies_ok") else False,
                )
            )
    return out


def _frames_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    frames = r.get("frames")
    if frames:
        tokens = frames["reply_tokens"]
        posts = frames["project_posts"]["median"]
        base = frames["baseline_frames"][len(frames["baseline_frames"]) // 2] if frames["baseline_frames"] else None
        ft = frames["first_text"]
        not_delayed = frames["first_frame_is_first_token"] and (ft.get("added_median_ms") or 0) < 0.1 * ttft_ms
        out.append(
            Row(
                f"2. Frames (PostToConnection) per {tokens}-token reply",
                f"{posts} (baseline {base}, one a token): {frames['posts_per_token']} a token",
                f"<= {tokens // 5} (1/5)",
                posts is not None and posts <= tokens / 5 and not frames["failed_turns"],
            )
        )
        out.append(
            Row(
                "   First phrase not delayed",
                f"first frame = first token: {'yes' if frames['first_frame_is_first_token'] else 'no'};"
                f" +{_ms(ft.get('added_median_ms'))} vs baseline",
                "first token at once",
                not_delayed,
            )
        )
    return out


def _bedrock_section_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    bedrock = r.get("bedrock")
    return _bedrock_rows(bedrock, r, ttft_ms) if bedrock else []


def _dynamodb_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    ddb = r.get("dynamodb")
    if ddb:
        plain, long_ = ddb["plain_turn"], ddb["long_reply_turn"]
        fixed = plain["fixed_per_turn"]
        purposes = plain["mean_by_purpose"]
        parts = (("start_turn", "generation"), ("history", "history query"), ("turn_write", "turn writes"))
        detail = " + ".join(f"{purposes.get(k, 0):g} {label}" for k, label in parts)
        out.append(
            Row(
                "3. DynamoDB requests, plain turn: fixed",
                f"{fixed['max']} ({detail})",
                "<= 4",
                fixed["max"] is not None and fixed["max"] <= 4,
            )
        )
        one_each = plain["one_claim_per_post"] and long_["one_claim_per_post"]
        per_frame = "one per posted frame" if one_each else "NOT one per frame"
        out.append(
            Row(
                "   ... plus interrupt checks (conditional writes)",
                f"{plain['claims_per_turn']['max']} a {r['options']['short_tokens']}-token reply,"
                f" {long_['claims_per_turn']['max']} a {r['options']['long_tokens']}-token reply ({per_frame})",
                "per phrase, not per token",
                plain["one_claim_per_post"]
                and long_["one_claim_per_post"]
                and (long_["claims_per_turn"]["max"] or 0) < r["options"]["long_tokens"],
            )
        )
    return out


def _cold_start_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    cold = r.get("cold_start")
    if cold:
        for mode, data in cold.items():
            eps = data["entry_points"]
            label = "from source: a bundle without .pyc" if mode == "source" else "bytecode: the bundle's .pyc"
            out.append(
                Row(
                    f"4. Cold start ({label}): import boto3",
                    f"{_ms(data['boto3_import_ms'])}; + client + 1 request: {_ms(data['first_call_floor_ms'])}",
                    "reference",
                    None,
                )
            )
            for name, label2 in (("ws_connect", "$connect"), ("ws_disconnect", "$disconnect")):
                e = eps[name]
                out.append(
                    Row(
                        f"   {label2} import / boto3",
                        f"x{e['import_ratio']} ({_ms(e['import_ms'])}); import + first call"
                        f" x{e.get('first_call_ratio')} of the floor ({_ms(e.get('import_and_first_call_ms'))})",
                        "< 1.5x (module import)",
                        e["import_ratio"] is not None and e["import_ratio"] < 1.5,
                    )
                )
            msg = eps["ws_message"]
            loaded = msg.get("modules_after_non_prompt_frames") or {}
            out.append(
                Row(
                    "   $default import / boto3; non-prompt frames",
                    f"x{msg['import_ratio']} ({_ms(msg['import_ms'])}); openai loaded: "
                    f"{'yes' if loaded.get('openai') else 'no'}, fastapi: {'yes' if loaded.get('fastapi') else 'no'}"
                    f"; setup (warms the model on purpose): {_ms(msg.get('setup_ms'))}",
                    "no openai, no fastapi",
                    not loaded.get("openai") and not loaded.get("fastapi"),
                )
            )
            web = eps["webhook"]
            out.append(
                Row("   webhook import / boto3", f"x{web['import_ratio']} ({_ms(web['import_ms'])})", "reported", None)
            )
    return out


def _concurrency_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    conc = r.get("concurrency")
    if conc:
        p = conc["project"]
        b = conc.get("baseline") or {}
        healthy = (
            p["delivered"] == p["turns"]
            and not p.get("history_problems")
            and not p.get("model_history_problems")
            and not p.get("error_frames")
            and not p.get("failed_invocations")
        )
        out.append(
            Row(
                f"5. {p['calls']} concurrent calls x {p['turns'] // max(p['calls'], 1)} turns",
                f"{p['delivered']}/{p['turns']} delivered, histories "
                f"{'correct' if not p.get('history_problems') and not p.get('model_history_problems') else 'WRONG'};"
                f" added over TTFT p50 {_ms(p['added_over_ttft']['median_ms'])},"
                f" p95 {_ms(p['added_over_ttft']['p95_ms'])}"
                + (f" (baseline p95 {_ms(b['added_over_ttft']['p95_ms'])})" if b else ""),
                "all delivered, all correct; p95 reported",
                healthy,
            )
        )
    return out


def _cost_rows(r: dict[str, Any], ttft_ms: float) -> list[Row]:
    out: list[Row] = []
    cost = r.get("cost")
    if cost:
        out.append(
            Row(
                "Cost: AWS per 1,000 call-minutes",
                f"${cost['aws_per_1000_minutes_usd']:.3f} (make cost shows the lines)",
                "reported",
                None,
            )
        )
    return out


_SECTIONS = (
    _latency_rows,
    _partial_rows,
    _latency_unseen_connection_rows,
    _latency_with_network_rows,
    _first_turn_rows,
    _frames_rows,
    _bedrock_section_rows,
    _dynamodb_rows,
    _cold_start_rows,
    _concurrency_rows,
    _cost_rows,
)


def _bedrock_rows(b: dict[str, Any], r: dict[str, Any], ttft_ms: float) -> list[Row]:
    """Figures 1 and 2 on the Bedrock path, beside the OpenAI path's."""
    lat, frames = b["latency"], b["frames"]
    openai = r.get("latency") or {}
    p, base = lat["project"], lat["baseline"]
    ok = lat.get("added_median_ms") is not None and lat["added_median_ms"] < 0.1 * ttft_ms
    clean = not lat["failed_turns"] and not frames["failed_turns"] and not b["refused"]
    posts = frames["project_posts"]["median"]
    tokens = frames["reply_tokens"]
    return [
        Row(
            f"1b. Bedrock path: added latency, median ({p['n']} + {base['n']} turns)",
            f"+{_ms(lat.get('added_median_ms'))} (p95 +{_ms(lat.get('added_p95_ms'))}): {_ms(p['median_ms'])} vs"
            f" baseline {_ms(base['median_ms'])}; OpenAI path +{_ms(openai.get('added_median_ms'))}",
            f"< {0.1 * ttft_ms:.0f} ms",
            ok and clean,
        ),
        Row(
            f"2b. Bedrock path: frames per {tokens}-token reply",
            f"{posts} ({frames['posts_per_token']} a token); first frame = first token: "
            f"{'yes' if frames['first_frame_is_first_token'] else 'no'}; {b['requests']} ConverseStream requests,"
            f" {len(b['refused'])} refused",
            f"<= {tokens // 5}",
            posts is not None and posts <= tokens / 5 and frames["first_frame_is_first_token"] and clean,
        ),
    ]


def table(rs: list[Row]) -> str:
    headers = ("figure", "value", "target", "met?")
    cols = [[h] for h in headers]
    for row in rs:
        for i, v in enumerate((row.figure, row.value, row.target, row.verdict)):
            cols[i].append(v)
    widths = [max(len(v) for v in col) for col in cols]
    lines = []
    for n in range(len(cols[0])):
        lines.append("  ".join(cols[i][n].ljust(widths[i]) for i in range(len(cols))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
