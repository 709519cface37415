"""Counters for the operator, served at /metrics in Prometheus text format."""

from __future__ import annotations

from collections import deque


class Metrics:
    """Counters for the operator (server.py serves them at /metrics, Prometheus text)."""

    WINDOW = 1000  # latencies kept for the quantiles

    def __init__(self) -> None:
        self.calls_active = 0
        self.calls_total: dict[str, int] = {}
        self.calls_overflow = 0  # sent straight to an operator: the bot was at capacity
        self.outcomes: dict[str, int] = {}
        self.transfer_failures: dict[tuple[str, str], int] = {}  # (route, reason) -> count
        self.late_frames = 0
        self.asr_seconds = 0.0
        self.asr_audio_seconds = 0.0
        self.latencies_ms: deque[float] = deque(maxlen=self.WINDOW)

    def quantile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def prometheus(self) -> str:
        lines = [
            "# TYPE bot_calls_active gauge",
            f"bot_calls_active {self.calls_active}",
            "# TYPE bot_calls_total counter",
            *(f'bot_calls_total{{transport="{t}"}} {n}' for t, n in self.calls_total.items()),
            "# TYPE bot_calls_overflow_total counter",
            f"bot_calls_overflow_total {self.calls_overflow}",
            "# TYPE bot_call_outcomes_total counter",
            *(f'bot_call_outcomes_total{{outcome="{o}"}} {n}' for o, n in self.outcomes.items()),
            "# TYPE bot_transfer_failed_total counter",
            *(
                f'bot_transfer_failed_total{{route="{r}",reason="{why}"}} {n}'
                for (r, why), n in sorted(self.transfer_failures.items())
            ),
            "# TYPE bot_late_frames_total counter",
            f"bot_late_frames_total {self.late_frames}",
            "# TYPE bot_asr_seconds_total counter",
            f"bot_asr_seconds_total {self.asr_seconds:.3f}",
            "# TYPE bot_asr_audio_seconds_total counter",
            f"bot_asr_audio_seconds_total {self.asr_audio_seconds:.3f}",
            "# TYPE bot_response_latency_ms summary",
        ]
        for q in (0.5, 0.95):
            value = self.quantile(q)
            if value is not None:
                lines.append(f'bot_response_latency_ms{{quantile="{q}"}} {value:.1f}')
        lines.append(f"bot_response_latency_ms_count {len(self.latencies_ms)}")
        return "\n".join(lines) + "\n"
