"""Per-client rate limits on every endpoint (Flask-Limiter), counted in the API's own Redis so that every worker
and every API task share one count per client.

Three classes, each in flask-limiter's notation and each `off`-able (`wikitide.settings`):
- queries (`WIKITIDE_RATE_LIMIT_QUERIES`, default `100/second`): each endpoint not named below, counted per client
  and endpoint (the dashboard's files and `/health` included);
- stream (`WIKITIDE_RATE_LIMIT_STREAM`, default `30/minute`): opening `/v1/stream` connections per client (a connection,
  once open, is not counted again);
- control (`WIKITIDE_RATE_LIMIT_CONTROL`, default `60/minute`): each `/v1/control/*` endpoint, counted before the
  token check, so guessing tokens is slow too.

A client is its address (`request.remote_addr`; behind a load balancer set `WIKITIDE_TRUSTED_PROXIES` to the
number of proxies in front, so the address comes from `X-Forwarded-For`). Counting is fixed-window, in Redis
(`SharedRedisStorage`): each process adds its hits there at most every 0.1 s while a client is far from its limit,
and hit by hit near it. When Redis cannot be reached, each
process counts in its own memory until it can (`in_memory_fallback_enabled`), so a Redis outage never turns into
refused requests: the API answers from DynamoDB then. A refused request gets 429 in JSON with `Retry-After`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Flask, Response, g, has_request_context, jsonify, request
from flask_limiter import HeaderNames, Limiter, RateLimitExceeded, RequestLimit
from flask_limiter._limits import RuntimeLimit
from flask_limiter._manager import LimitManager
from flask_limiter.constants import ExemptionScope
from flask_limiter.util import get_qualified_name, get_remote_address
from limits import RateLimitItem
from limits.storage import RedisStorage
from limits.strategies import STRATEGIES, FixedWindowRateLimiter, RateLimiter
from limits.util import WindowStats
from werkzeug.http import http_date, parse_date

# One attempt per count, bounded by these (seconds): a hung Redis costs a request this much, then the fallback.
REDIS_TIMEOUT_SECONDS = 0.5
SCHEME_PREFIX = "wikitide+"


@dataclass
class _Window:
    """One key's fixed window as this process sees it."""

    shared: int  # the key's count in Redis after this process's last round trip (everything sent until then)
    unsent: int  # this process's hits since, not yet added in Redis
    ends_at: float  # wall-clock end of the window, from the key's TTL
    read_at: float  # monotonic time of the last round trip (or of the start of the one out)
    in_flight: int = 0  # this process's hits sent in round trips whose replies have not come back

    @property
    def known(self) -> int:
        """The key's count as this process knows it: the shared count and its own hits since."""
        return self.shared + self.in_flight + self.unsent


class SharedRedisStorage(RedisStorage):
    """limits' Redis storage, with each process counting a client's hits in its own memory between round trips while
    the count is far from the limit, and exactly in Redis near it.

    A round trip increments a key by the hits this process counted since the last one and reads back the key's count
    and remaining time in the same script (`SCRIPT_INCR_TTL`). One is made when the key's window is new to this
    process, when the shared count read last is older than `SHARE_SECONDS`, and for every hit once the count this
    process knows of would pass `LOCAL_SHARE` of the limit; in between a hit is counted here. A window whose shared
    count is already past the limit refuses without asking again (a window's count only grows). Headers
    (`X-RateLimit-*`) are made from what this process knows: the shared count plus its own unsent hits.

    Why it holds: every process counts locally only while what it knows (the shared count plus its own unsent hits)
    stays within `LOCAL_SHARE` of the limit, so up to 1 / `LOCAL_SHARE` processes (4: two API tasks of two workers)
    together stay within the limit before each of them counts in Redis hit by hit; with more, a burst can pass the
    limit by at most that share per extra process. Measured with `benchmarks/api_load.py` (README, API
    benchmark): a request kept the worker waiting on Redis for 22 % of its time, now about once per client, endpoint
    and process every `SHARE_SECONDS`.

    Used with `SharedFixedWindow` (the strategy that tells it the limit); registered for `wikitide+redis://` and
    `wikitide+rediss://`, the rest of the URI being Redis's own.
    """

    STORAGE_SCHEME = [f"{SCHEME_PREFIX}redis", f"{SCHEME_PREFIX}rediss"]
    SHARE_SECONDS = 0.1
    LOCAL_SHARE = 0.25
    # A trip that reports a window ending this much later than the one known opened a new window (the same
    # window's end, recomputed from its TTL at each trip, moves by milliseconds).
    NEW_WINDOW_SECONDS = 0.5
    # Windows that ended are forgotten at most this often.
    PRUNE_SECONDS = 10.0
    SCRIPT_INCR_TTL = """
local current = redis.call("incrby", KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("pttl", KEYS[1])}
"""

    def __init__(self, uri: str, **options: Any) -> None:
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self._pruned_at = time.monotonic()
        super().__init__(uri.removeprefix(SCHEME_PREFIX), **options)

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_incr_ttl = self.get_connection().register_script(self.SCRIPT_INCR_TTL)

    def count(self, key: str, expiry: int, amount: int, limit: int | None) -> tuple[int, float]:
        """Count `amount` hits of `key` (a window of `expiry` seconds) and return the key's count as this process
        knows it afterwards, and when its window ends (epoch seconds); with no `limit` given, always in a round
        trip."""
        out: _Window | None = None
        with self._lock:
            window = self._windows.get(key)
            if window is not None and time.time() < window.ends_at and limit is not None:
                known = window.known + amount
                fresh = time.monotonic() - window.read_at < self.SHARE_SECONDS
                if window.shared > limit or (fresh and known <= limit * self.LOCAL_SHARE):
                    window.unsent += amount
                    return known, window.ends_at
                sending = window.unsent + amount
                window.unsent = 0
                # The other requests of this process count in memory while this trip is out (under gevent, every
                # request that arrived during a trip made one of its own: 4 % of a kept answer's time), knowing
                # of the hits it carries.
                window.in_flight += sending
                window.read_at = time.monotonic()
                out = window
            else:
                sending = amount
        try:
            count, ttl_ms = self.lua_incr_ttl([self.prefixed_key(key)], [expiry, sending])
        except Exception:
            with self._lock:
                self._windows.pop(key, None)
                if out is not None:
                    out.in_flight -= sending
            raise
        count, read_at = int(count), time.monotonic()
        with self._lock:
            if out is not None:
                out.in_flight -= sending
            ends_at = time.time() + max(int(ttl_ms), 0) / 1000
            window = self._windows.get(key)
            if window is None or ends_at > window.ends_at + self.NEW_WINDOW_SECONDS:
                # A window this process has not seen (the key expired and this trip opened it again).
                window = self._windows[key] = _Window(count, 0, ends_at, read_at)
            else:
                # Trips of concurrent requests can return out of order: the shared count only grows.
                window.shared, window.read_at = max(window.shared, count), read_at
            self._prune(read_at)
            # This hit's count: Redis's, with the hits this process counted meanwhile in memory.
            return count + window.unsent, window.ends_at

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Always a round trip (a strategy that does not say the limit)."""
        return self.count(key, expiry, amount, limit=None)[0]

    def known_window(self, key: str) -> _Window | None:
        """The key's window as this process knows it, while it lasts."""
        window = self._windows.get(key)
        return window if window is not None and time.time() < window.ends_at else None

    def get(self, key: str) -> int:
        window = self._windows.get(key)
        if window is not None and time.time() < window.ends_at:
            return window.known
        return super().get(key)

    def get_expiry(self, key: str) -> float:
        window = self._windows.get(key)
        if window is not None and time.time() < window.ends_at:
            return window.ends_at
        return super().get_expiry(key)

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)
        super().clear(key)

    def reset(self) -> int | None:
        with self._lock:
            self._windows.clear()
        return super().reset()

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < self.PRUNE_SECONDS:
            return
        self._pruned_at = now
        ended = time.time()
        for key in [key for key, window in self._windows.items() if window.ends_at <= ended]:
            del self._windows[key]


class SharedFixedWindow(FixedWindowRateLimiter):
    """limits' fixed window, telling `SharedRedisStorage` the limit so that it can count far from it in memory. Any
    other storage (the in-memory fallback while Redis is unreachable) is counted as limits does."""

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        return self.hit_with_stats(item, *identifiers, cost=cost)[0]

    def hit_with_stats(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> tuple[bool, WindowStats]:
        """`hit`, and the window's stats after it (`get_window_stats`), in one count."""
        if isinstance(self.storage, SharedRedisStorage):
            count, ends_at = self.storage.count(item.key_for(*identifiers), item.get_expiry(), cost, item.amount)
            return count <= item.amount, WindowStats(ends_at, max(0, item.amount - count))
        return super().hit(item, *identifiers, cost=cost), super().get_window_stats(item, *identifiers)

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        if isinstance(self.storage, SharedRedisStorage):
            # The key made once and the window read once (limits makes the key twice; each is a few µs a request).
            window = self.storage.known_window(item.key_for(*identifiers))
            if window is not None:
                return WindowStats(window.ends_at, max(0, item.amount - window.known))
        return super().get_window_stats(item, *identifiers)


class ResolvedOnce(LimitManager):
    """Flask-Limiter's limit manager, answering which limits and exemptions apply to an endpoint from what it
    resolved for the first request of that endpoint (and method): Flask-Limiter resolves them anew for every
    request (parsing each limit string, walking the blueprints and their exemptions), 12 % of a kept answer's time
    in the API benchmark (py-spy). It holds because the API's limits are fixed strings, all set before the first
    request; any change to them (an `add_*` or `set_*` of the manager) forgets what was resolved.

    Built from the limiter's own manager (`Limiter.limit_manager`), sharing its tables. `LimitManager` is private to
    Flask-Limiter (4.1.1, pinned): `tests/unit/test_api_limits.py` fails if an upgrade changes how it is called."""

    def __init__(self, manager: LimitManager) -> None:
        self.__dict__.update(manager.__dict__)
        self._resolved: dict[tuple[Any, ...], tuple[list[RuntimeLimit], ...]] = {}
        self._scopes: dict[tuple[Any, ...], ExemptionScope] = {}
        # Moves on every change: what was derived from the resolved limits (`PlannedLimiter`'s plans) is stale.
        self.generation = 0

    def resolve_limits(self, app: Flask, endpoint: str | None = None, blueprint: str | None = None,
                       callable_name: str | None = None, in_middleware: bool = False,
                       marked_for_limiting: bool = False) -> tuple[list[RuntimeLimit], ...]:
        # The method: a limit given for some methods only applies to those.
        method = request.method if has_request_context() else None
        key = (id(app), endpoint, blueprint, callable_name, in_middleware, marked_for_limiting, method)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = self._resolved[key] = super().resolve_limits(
                app, endpoint, blueprint, callable_name, in_middleware, marked_for_limiting)
        # Copies: the caller may extend what it is given.
        return tuple(list(limits) for limits in resolved)

    def exemption_scope(self, app: Flask, endpoint: str | None, blueprint: str | None) -> ExemptionScope:
        key = (id(app), endpoint, blueprint)
        scope = self._scopes.get(key)
        if scope is None:
            scope = self._scopes[key] = super().exemption_scope(app, endpoint, blueprint)
        return scope

    def _forget(self) -> None:
        self._resolved.clear()
        self._scopes.clear()
        self.generation += 1

    def set_application_limits(self, *args: Any, **kwargs: Any) -> None:
        self._forget()
        super().set_application_limits(*args, **kwargs)

    def set_default_limits(self, *args: Any, **kwargs: Any) -> None:
        self._forget()
        super().set_default_limits(*args, **kwargs)

    def add_decorated_limit(self, *args: Any, **kwargs: Any) -> None:
        self._forget()
        super().add_decorated_limit(*args, **kwargs)

    def add_blueprint_limit(self, *args: Any, **kwargs: Any) -> None:
        self._forget()
        super().add_blueprint_limit(*args, **kwargs)

    def add_route_exemption(self, *args: Any, **kwargs: Any) -> None:
        self._forget()
        super().add_route_exemption(*args, **kwargs)

    def add_blueprint_exemption(self, *args: Any, **kwargs: Any) -> None:
        self._forget()
        super().add_blueprint_exemption(*args, **kwargs)

    def add_endpoint_hint(self, *args: Any, **kwargs: Any) -> None:
        self._forget()
        super().add_endpoint_hint(*args, **kwargs)


@dataclass(frozen=True)
class _Plan:
    """What Flask-Limiter does for one endpoint and method when it is a plain count: each limit with the scope it
    is counted under, in the order Flask-Limiter tries them (smallest window first)."""

    limits: tuple[tuple[RuntimeLimit, str], ...]
    # The limit the `X-RateLimit-*` headers describe while none is breached (Flask-Limiter's choice: the first one
    # not shared between endpoints).
    shown: int


# What Flask-Limiter counts for a request that matched no route, and for the static files.
_NO_LIMITS = _Plan((), 0)


class PlannedLimiter(Limiter):
    """Flask-Limiter, counting each request of an endpoint as Flask-Limiter decided for its first one.

    Flask-Limiter works out anew for every request which limits apply and how (the view's qualified name, request
    filters, meta limits, exemptions, per-method scopes, each limit's conditions), and keeps what it found in a
    per-request context that its after-request and teardown hooks read back: 34 µs of a kept answer's 137 µs in the
    app even with no limit set, 63 µs with one (the faster machine kind, the app called without a server; the whole
    kept answer is 73 µs now: `benchmarks/api_request_cost.py`; `benchmarks/api_load.py` measures the API served).
    Here the first request of an endpoint and method makes a plan from Flask-Limiter's own resolution
    (`ResolvedOnce`); each later request only counts its client under the plan's limits (the same strategy, storage,
    keys and scopes as Flask-Limiter's), leaving the limit to show and its window in `g`, and `_add_headers` writes
    the headers from them as Flask-Limiter would.

    Flask-Limiter's own path (`super()._check_request_limit`) still serves everything a plan does not hold: limits
    with conditions (`exempt_when`, `deduct_when`, a callable cost or scope), meta limits, request filters,
    `on_breach` callbacks, views with decorated limits, `fail_on_first_breach` off, and the in-memory fallback while
    the storage is unreachable (a count that raises hands the request to it, which marks the storage dead and counts
    in memory). A change to the limits (any `add_*`/`set_*` of the manager) makes the plans again.
    `tests/unit/test_api_planned_limits.py` compares it with Flask-Limiter alone, answer by answer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # None: Flask-Limiter's own path serves the endpoint and method.
        self._plans: dict[tuple[str, str], _Plan | None] = {}
        self._plans_generation = -1
        super().__init__(*args, **kwargs)

    def init_app(self, app: Flask) -> None:
        # Flask-Limiter registers its request hooks only for an app that does not list it yet: these are its hooks,
        # which hand the requests its own path served to its after-request and teardown (which need its
        # per-request context; making that context was 6 % of a kept answer).
        app.extensions.setdefault("limiter", set()).add(self)
        super().init_app(app)
        mapping = self._header_mapping
        self._header_names = tuple(mapping[name] for name in (HeaderNames.LIMIT, HeaderNames.REMAINING,
                                                              HeaderNames.RESET, HeaderNames.RETRY_AFTER))
        app.before_request(self._check_request_limit)
        app.after_request(self._after_request)
        app.teardown_request(self._teardown_request)

    def _after_request(self, response: Response) -> Response:
        counted = g.get(_COUNTED)
        if counted is None:
            return cast(Response, self._Limiter__inject_headers(response))  # type: ignore[attr-defined]
        if counted and self._headers_enabled:
            self._add_headers(response, *counted)
        return response

    def _add_headers(self, response: Response, item: RateLimitItem, stats: WindowStats) -> None:
        """The rate limit headers of a limit and its window after this request's hit, as Flask-Limiter's
        after-request hook writes them (`Limiter.__inject_headers`, 4.1.1): the limit, what remains of it, the
        second its window ends, and when a client may try again: the later of that end and the answer's own
        `Retry-After` (a 503's)."""
        limit_name, remaining_name, reset_name, retry_after_name = self._header_names
        reset_at = int(stats.reset_time + 1)
        headers = response.headers
        headers.add(limit_name, str(item.amount))
        headers.add(remaining_name, str(stats.remaining))
        headers.add(reset_name, str(reset_at))
        # `getlist`: `get` raises and catches a KeyError for the answers that have none (nearly all).
        for retry_after in headers.getlist("Retry-After")[:1]:
            date = parse_date(retry_after)
            later = date.timestamp() if date is not None else time.time() + int(retry_after)
            reset_at = max(int(later), reset_at)
        # Added, not set: Flask-Limiter sets it because its hook may meet an answer twice; this one runs once.
        headers.add(retry_after_name,
                    http_date(reset_at) if self._retry_after == "http-date" else str(int(reset_at - time.time())))

    def _teardown_request(self, exc: BaseException | None) -> None:
        if g.pop(_COUNTED, None) is None:
            self._Limiter__release_context(exc)  # type: ignore[attr-defined]

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        plan = None
        if in_middleware and self.enabled and self.initialized and not self._storage_dead and not self._request_filters:
            current = request._get_current_object()  # type: ignore[attr-defined]
            plan = self._plan(current.endpoint, current.method)
        if plan is None:
            super()._check_request_limit(callable_name, in_middleware)
            return
        clients = [limit.key_func() for limit, _ in plan.limits]
        if not all(clients):
            # Flask-Limiter logs and skips a limit with an empty key: its path says so (before anything is counted).
            super()._check_request_limit(callable_name, in_middleware)
            return
        counted: list[tuple[RuntimeLimit, list[str]]] = []
        shown: tuple[RateLimitItem, WindowStats] | None = None
        for index, ((limit, scope), client) in enumerate(zip(plan.limits, clients, strict=True)):
            args = [self._key_prefix, client, scope] if self._key_prefix else [client, scope]
            try:
                allowed, stats = _hit(self._limiter, limit.limit, args, limit.cost)  # type: ignore[arg-type]
            except Exception:
                # The storage failed: Flask-Limiter's path marks it dead and counts in memory (a limit counted here
                # before the failure may be counted again there).
                super()._check_request_limit(callable_name, in_middleware)
                return
            if not allowed:
                self._refuse(limit, args, counted)
            counted.append((limit, args))
            if index == plan.shown:
                shown = limit.limit, stats
        # Marks the request as counted here, even with no limit counted: Flask-Limiter's hooks have nothing to do.
        setattr(g, _COUNTED, shown or ())

    def _plan(self, endpoint: str | None, method: str) -> _Plan | None:
        generation = getattr(self.limit_manager, "generation", None)
        if generation is None:
            return None  # a manager that does not say when its limits change
        if generation != self._plans_generation:
            self._plans.clear()
            self._plans_generation = generation
        if not endpoint:
            return _NO_LIMITS  # no route matched (404, 405): whatever the method, which a client chooses freely
        key = (endpoint, method)
        try:
            return self._plans[key]
        except KeyError:
            plan = self._plans[key] = self._make_plan(endpoint, method)
            return plan

    def _make_plan(self, endpoint: str | None, method: str) -> _Plan | None:
        """What `Limiter.__filter_limits` and `__evaluate_limits` would count for this endpoint and method, or None
        where they would do more than count (see the class's docstring)."""
        from flask import current_app

        if not endpoint or endpoint.split(".")[-1] == "static":
            return _NO_LIMITS
        view = current_app.view_functions.get(endpoint)
        name = get_qualified_name(view) if view else ""
        if (name in self._marked_for_limiting or self.limit_manager.has_hints(endpoint) or self._meta_limits
                or self._on_breach or not self._fail_on_first_breach):
            return None
        defaults, decorated = self.limit_manager.resolve_limits(
            current_app, endpoint, request.blueprint, name, True, False)
        limits = [*dict.fromkeys(defaults), *decorated]
        if any(limit.exempt_when or limit.deduct_when or limit.meta_limits or limit.on_breach or callable(limit.cost)
               or callable(limit.scope) for limit in limits):
            return None
        applying = [(limit, limit.scope_for(endpoint, method)) for limit in sorted(limits, key=lambda x: x.limit)
                    if not limit.method_exempt]
        shown = next((i for i, (limit, _) in enumerate(applying) if not limit.shared), 0)
        return _Plan(tuple(applying), shown)

    def _refuse(self, limit: RuntimeLimit, args: list[str], counted: list[tuple[RuntimeLimit, list[str]]]) -> None:
        """Refuse the request as Flask-Limiter does on the first breach."""
        self.logger.info("ratelimit %s (%s) exceeded at endpoint: %s", limit.limit, args[-2], args[-1])
        breached = RequestLimit(self, limit.limit, args, True, limit.shared)
        context = self.context
        context.view_rate_limit = breached
        context.view_rate_limits = [RequestLimit(self, lim.limit, lim_args, False, lim.shared)
                                    for lim, lim_args in counted] + [breached]
        raise RateLimitExceeded(limit)


# In `g`, set by `PlannedLimiter`'s own path: the limit to show in the headers and its window after the hit, or
# `()` for none; absent when Flask-Limiter's path served the request.
_COUNTED = "wikitide_rate_limit"

# Flask-Limiter names its strategy from limits' registry.
STRATEGY = "wikitide-shared-fixed-window"
STRATEGIES[STRATEGY] = SharedFixedWindow


@dataclass(frozen=True)
class RateLimits:
    queries: str = "100/second"
    stream: str = "30/minute"
    control: str = "60/minute"
    storage_uri: str = "memory://"
    storage_options: tuple[tuple[str, Any], ...] = ()


def redis_storage(url: str, password: str | None, ca_file: str | None) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """The storage URI and options of the API's Redis (its URL, password and CA as `wikitide.redis_client` uses
    them), with one attempt per command."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                               "retry": Retry(NoBackoff(), 0)}
    if password is not None:
        options["password"] = password
    if ca_file:
        options["ssl_ca_certs"] = ca_file
    return SCHEME_PREFIX + url, tuple(options.items())


def install(app: Flask, limits: RateLimits, *, stream: Blueprint, control: Blueprint) -> Limiter:
    """Count every request of `app` against its class's limit."""
    limiter = PlannedLimiter(
        get_remote_address,
        app=app,
        default_limits=[limits.queries] if limits.queries != "off" else [],
        storage_uri=limits.storage_uri,
        storage_options=dict(limits.storage_options),
        strategy=STRATEGY,
        headers_enabled=True,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="wt:limits",
        # Flask-Limiter sets Retry-After on every answer (and moves a 503's own Retry-After): under its own name
        # here; a 429 gets the standard header from `_refused`.
        header_name_mapping={HeaderNames.RETRY_AFTER: "X-RateLimit-Retry-After"},
    )
    limiter.limit_manager = ResolvedOnce(limiter.limit_manager)
    for blueprint, rate in ((stream, limits.stream), (control, limits.control)):
        if rate == "off":
            limiter.exempt(blueprint)
        else:
            limiter.limit(rate)(blueprint)

    @app.errorhandler(RateLimitExceeded)
    def _refused(exc: RateLimitExceeded) -> tuple[Response, int]:
        response = jsonify({"error": f"rate limit exceeded ({exc.description} per client); retry after the "
                                     f"Retry-After seconds"})
        current = limiter.current_limit
        response.headers["Retry-After"] = str(max(1, math.ceil(current.reset_at - time.time())) if current else 1)
        return response, 429

    return limiter


def _hit(strategy: RateLimiter, item: RateLimitItem, args: list[str], cost: int) -> tuple[bool, WindowStats]:
    """Count a hit and read the window's stats after it: in one count for the API's own strategy."""
    if isinstance(strategy, SharedFixedWindow):
        return strategy.hit_with_stats(item, *args, cost=cost)
    return strategy.hit(item, *args, cost=cost), strategy.get_window_stats(item, *args)
