"""Fault/latency injection rules and per-operation call counters.

A rule: {"operation": "eks:CreateAddon" (fnmatch pattern, "*" for all), "kind": "throttle" |
"error" | "delay" | "rate", "count": N (default 1; -1 = until cleared), "delay_ms": M (optional,
also adds latency before a throttle/error), "status": S (optional status override),
"code"/"message" (optional overrides), "region": a region pattern (optional: only calls signed
for a matching region, e.g. to fail a primary region and not its failover)}. A "rate" rule is a token bucket shared by every
matching call, like an AWS API's rate limit: "per_second": R (required), "burst": B (default
R); a call finding no token is throttled. It lasts until cleared (its "hits" count the
throttled answers).

On each call, every matching "delay" rule with calls left adds its delay and uses one call; the
first matching "throttle"/"error" rule with calls left uses one call and decides the answer.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections import Counter
from dataclasses import dataclass

KINDS = ("throttle", "error", "delay", "rate")


@dataclass
class Rule:
    operation: str
    kind: str
    remaining: int  # -1 = unlimited
    delay_ms: int = 0
    status: int | None = None
    code: str | None = None
    message: str | None = None
    hits: int = 0
    per_second: float = 0.0
    tokens: float = 0.0
    refilled: float = 0.0
    burst: float = 0.0
    region: str | None = None

    def take_token(self) -> bool:
        """A rate rule: refill by the time passed, then take one token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.per_second)
        self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def matches(self, op_name: str, region: str | None = None) -> bool:
        if self.region is not None and not (region and fnmatch.fnmatchcase(region, self.region)):
            return False
        return self.remaining != 0 and fnmatch.fnmatchcase(op_name, self.operation)

    def use(self) -> None:
        self.hits += 1
        if self.remaining > 0:
            self.remaining -= 1

    def as_dict(self) -> dict:
        return {
            "operation": self.operation,
            "kind": self.kind,
            "remaining": self.remaining,
            "delay_ms": self.delay_ms,
            "status": self.status,
            "hits": self.hits,
            "region": self.region,
        }


@dataclass
class Decision:
    delay_s: float = 0.0
    # (status, code, message) of an injected failure, or None to pass through.
    failure: tuple[int, str, str] | None = None


class FaultsAndCalls:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._calls: Counter[str] = Counter()

    # --- rules ---
    def add(self, spec: dict) -> Rule:
        op = spec.get("operation")
        kind = spec.get("kind")
        if not isinstance(op, str) or not op:
            raise ValueError("'operation' (e.g. \"eks:CreateAddon\") is required")
        if kind not in KINDS:
            raise ValueError(f"'kind' must be one of {KINDS}")
        count = spec.get("count", -1 if kind == "rate" else 1)
        if not isinstance(count, int) or count == 0 or count < -1:
            raise ValueError("'count' must be a positive integer or -1 (until cleared)")
        delay_ms = spec.get("delay_ms", 0)
        if not isinstance(delay_ms, (int, float)) or delay_ms < 0:
            raise ValueError("'delay_ms' must be a non-negative number")
        if kind == "delay" and not delay_ms:
            raise ValueError("a 'delay' fault needs 'delay_ms'")
        status = spec.get("status")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError("'status' must be an HTTP error status")
        region = spec.get("region")
        if region is not None and (not isinstance(region, str) or not region):
            raise ValueError("'region' must be a non-empty region pattern (e.g. \"us-west-2\")")
        rule = Rule(op, kind, count, int(delay_ms), status, spec.get("code"), spec.get("message"), region=region)
        if kind == "rate":
            per_second = spec.get("per_second")
            if not isinstance(per_second, (int, float)) or per_second <= 0:
                raise ValueError("a 'rate' fault needs 'per_second' > 0")
            burst = spec.get("burst", per_second)
            if not isinstance(burst, (int, float)) or burst < 1:
                raise ValueError("'burst' must be at least 1")
            rule.per_second, rule.burst, rule.tokens = float(per_second), float(burst), float(burst)
            rule.refilled = time.monotonic()
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict]:
        with self._lock:
            return [r.as_dict() for r in self._rules]

    # --- calls ---
    def record(self, op_name: str, protocol: str, region: str | None = None) -> Decision:
        """Count a call of op_name (signed for `region`) and decide whether a fault applies."""
        d = Decision()
        with self._lock:
            self._calls[op_name] += 1
            failure_rule = None
            for rule in self._rules:
                if not rule.matches(op_name, region):
                    continue
                if rule.kind == "delay":
                    rule.use()
                    d.delay_s += rule.delay_ms / 1000.0
                elif rule.kind == "rate":
                    if not rule.take_token() and failure_rule is None:
                        rule.hits += 1
                        failure_rule = rule
                elif failure_rule is None:
                    rule.use()
                    failure_rule = rule
                    d.delay_s += rule.delay_ms / 1000.0
            self._rules = [r for r in self._rules if r.remaining != 0]
        if failure_rule is not None:
            d.failure = _failure(failure_rule, protocol)
        return d

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._calls.items()))

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    @staticmethod
    def sleep(decision: Decision) -> None:
        if decision.delay_s > 0:
            time.sleep(decision.delay_s)


def _failure(rule: Rule, protocol: str) -> tuple[int, str, str]:
    if rule.kind in ("throttle", "rate"):
        if protocol in ("query", "ec2"):
            status, code = 400, "Throttling"
        elif protocol == "rest-xml":
            status, code = 503, "SlowDown"
        elif protocol == "kube":
            status, code = 429, "TooManyRequests"
        else:
            status, code = 429, "ThrottlingException"
        message = "Rate exceeded"
    elif protocol == "kube":
        status, code, message = 500, "InternalError", "Internal error occurred: etcdserver: request timed out"
    else:
        status, code, message = 500, "InternalFailure", "We encountered an internal error. Please try again."
    return (
        rule.status or status,
        rule.code or code,
        rule.message or f"{message} (injected by the test environment)",
    )
