//! The simulator's fault plan: the venue misbehaving on purpose, seeded and repeatable.
//!
//! Real connectors lose money to the venue's bad days — dropped and reset connections, streams that go
//! silent while pings still work, 429 / 418 bans, the three meanings of 503, a skewed clock, duplicated
//! and reordered frames, garbage frames, symbols that stop trading, maintenance windows
//! (`RELIABILITY.md` §1, §2, §7). `perpdesk sim --faults <plan>` makes the simulated exchange do all of
//! them, so the same client code that talks to Binance is proven against them in the tests and in long
//! manual runs.
//!
//! A plan is text: items separated by commas, semicolons or new lines, `#` to the end of a line is a
//! comment (at the start of a line or after white space). An item is a preset name (`none`, `light`, `heavy`: later items override earlier ones) or
//! `key=value`:
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `seed` | integer | seed of every random choice (default 1) |
//! | `drop` | duration | per connection, on average once per duration: TCP close without a close frame |
//! | `reset` | duration | … a TCP reset (RST) |
//! | `close` | duration | … a WebSocket close frame (1001 / 1011 / 1013) |
//! | `stall` | `every/length` | … a silent stall of `length`: open, pings answered, no data |
//! | `cut` | duration | connection lifetime; the venue cuts every connection at 24h (the default) |
//! | `dup`, `reorder`, `late`, `malformed` | probability | per frame: sent twice; swapped with the next; a stale non-final copy after a closed kline; a garbage frame inserted |
//! | `delay` | `probability/duration` | per push: held back up to the duration |
//! | `r429`, `r418` | `probability/duration` | per REST request: 429, or a 418 ban lasting the duration, with `Retry-After` |
//! | `r503` | probability | per REST request: one of the three 503 bodies |
//! | `rdelay` | `probability/duration` | per REST request: answered up to the duration late |
//! | `ounknown` | `probability/duration` | per order POST: an unknown outcome, answered 503 "Unknown error" at once or after the duration (a timeout for a client waiting less); the order is created and shown at once, created and shown only after up to the duration, or not created (one third each) |
//! | `skew` | signed duration | the venue's clock runs this far ahead (`serverTime`, klines, -1021 on stale `timestamp`s) |
//! | `delist` | `SYMBOL@after[:STATUS]` or `#k@after[:STATUS]` | the symbol (or the k-th tradable USDT perpetual) leaves TRADING `after` the start (default status SETTLING) |
//! | `maint` | `start+length` | a maintenance window: REST 503, WebSocket upgrades refused, open connections closed |
//! | `until` | duration | every fault stops this long after the start (bans and stalls end, no window opens): a chaos phase, then a quiet one in which a client must converge |
//!
//! Durations take a unit (`250ms`, `30s`, `5m`, `2h`); probabilities are `5%` or `0.05`. Example:
//! `heavy,seed=7,stall=60s/35s`. A bad item is refused with a message naming it.
//!
//! Every connection draws from its own generator, seeded from the plan's seed and the connection's
//! ordinal; REST draws from one generator in request order. Time-based faults (`delist`, `maint`) count
//! from the moment the simulator started. Counts of what was injected are kept in [`FaultCounts`].
//!
//! A running plan can be calmed ([`FaultState::set_calm`]): from then on nothing is injected (stalls in
//! progress end, no maintenance), while the venue's connection lifetime still holds. A soak calms the
//! venue at its end so that "the client caught up" has a clear meaning, after faults that ran the whole
//! time.

use std::{
    fmt,
    path::Path,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::trading::{FaultVenue, OrderFault};

/// Why a fault plan could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultPlanError {
    /// An item of the plan is wrong; `item` is the text as written.
    #[error("fault plan{where_}: `{item}`: {reason}")]
    BadItem {
        /// ` (file F, line N)` when the plan came from a file, else empty.
        where_: String,
        item: String,
        reason: String,
    },
    #[error("fault plan file {path}: {error}")]
    File { path: String, error: String },
}

/// A frame-level or request-level fault: how often, and how much.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chance {
    /// Probability per frame, push or request, `0..=1`.
    pub probability: f64,
    /// Delay bound or `Retry-After`, where the fault has one.
    pub amount: Duration,
}

/// A symbol leaving TRADING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delisting {
    pub symbol: SymbolRef,
    /// Time after the simulator's start.
    pub after: Duration,
    /// The status it moves to (`SETTLING`, `CLOSE`, `PENDING_TRADING`, …).
    pub status: String,
}

/// Which symbol a delisting names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolRef {
    Name(String),
    /// The k-th (0-based) TRADING USDT perpetual in listing order.
    Index(usize),
}

/// A maintenance window, from the simulator's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Duration,
    pub length: Duration,
}

/// A parsed fault plan. `FaultPlan::default()` injects nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    pub seed: u64,
    pub drop_every: Option<Duration>,
    pub reset_every: Option<Duration>,
    pub close_every: Option<Duration>,
    /// (mean interval, stall length)
    pub stall: Option<(Duration, Duration)>,
    /// Connection lifetime; `None` = the venue's 24 hours.
    pub cut: Option<Duration>,
    pub dup: f64,
    pub reorder: f64,
    pub late: f64,
    pub malformed: f64,
    pub delay: Option<Chance>,
    pub rest_429: Option<Chance>,
    pub rest_418: Option<Chance>,
    pub rest_503: f64,
    pub rest_delay: Option<Chance>,
    /// Order POSTs whose outcome is made unknown (`ounknown`).
    pub order_unknown: Option<Chance>,
    /// Venue clock minus true clock, ms.
    pub skew_ms: i64,
    pub delist: Vec<Delisting>,
    pub maintenance: Vec<Window>,
    /// Every fault stops this long after the start; `None` = never.
    pub until: Option<Duration>,
}

/// The venue's connection lifetime.
pub const VENUE_CONNECTION_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The venue's default `recvWindow`, used for the -1021 check of skewed requests.
pub const DEFAULT_RECV_WINDOW_MS: i64 = 5_000;

const KEYS: &str = "seed, drop, reset, close, stall, cut, dup, reorder, late, malformed, delay, r429, r418, \
                    r503, rdelay, ounknown, skew, delist, maint, until";

/// The `light` preset: a few faults of every kind, for a console left running.
const LIGHT: &str = "seed=1,drop=900s,reset=1800s,close=1800s,stall=1800s/35s,dup=0.5%,reorder=0.5%,\
                     late=0.2%,malformed=0.1%,delay=1%/200ms,r429=0.2%/2s,r503=0.5%,rdelay=1%/300ms";

/// The `heavy` preset: every fault, often (a 10-minute run with 4 connections sees dozens of
/// connection faults), one symbol leaving TRADING after 150 s and a 20 s maintenance window at 300 s.
const HEAVY: &str = "seed=1,drop=240s,reset=240s,close=240s,stall=300s/35s,dup=5%,reorder=5%,late=1%,\
                     malformed=1%,delay=5%/400ms,r429=1%/2s,r418=0.2%/3s,r503=2%,rdelay=5%/300ms,\
                     skew=1500ms,delist=#1@150s,maint=300s+20s";

impl FaultPlan {
    /// The plan from a command-line argument: a file if one exists at that path, else inline text
    /// (which may be, or start with, a preset name).
    pub fn load(arg: &str) -> Result<Self, FaultPlanError> {
        let path = Path::new(arg);
        if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| FaultPlanError::File {
                path: arg.to_owned(),
                error: e.to_string(),
            })?;
            let mut plan = Self::default();
            for (n, line) in text.lines().enumerate() {
                plan.apply_text(line, &format!(" (file {arg}, line {})", n + 1))?;
            }
            Ok(plan)
        } else {
            Self::parse(arg)
        }
    }

    /// Parses inline plan text.
    pub fn parse(text: &str) -> Result<Self, FaultPlanError> {
        let mut plan = Self::default();
        for line in text.lines() {
            plan.apply_text(line, "")?;
        }
        Ok(plan)
    }

    /// True when the plan injects nothing.
    pub fn is_quiet(&self) -> bool {
        Self {
            seed: self.seed,
            ..Self::default()
        } == *self
    }

    fn apply_text(&mut self, line: &str, where_: &str) -> Result<(), FaultPlanError> {
        // `#` starts a comment at the start of a line or after white space (`#k` names a symbol).
        let comment = line
            .char_indices()
            .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)))
            .map_or(line.len(), |(i, _)| i);
        let line = &line[..comment];
        for item in line.split([',', ';']) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            self.apply_item(item).map_err(|reason| FaultPlanError::BadItem {
                where_: where_.to_owned(),
                item: item.to_owned(),
                reason,
            })?;
        }
        Ok(())
    }

    fn apply_item(&mut self, item: &str) -> Result<(), String> {
        let Some((key, value)) = item.split_once('=') else {
            return match item {
                "none" => {
                    *self = Self::default();
                    Ok(())
                }
                "light" => self.apply_preset(LIGHT),
                "heavy" => self.apply_preset(HEAVY),
                _ => Err(format!(
                    "not a preset (none, light, heavy) nor key=value; keys: {KEYS}"
                )),
            };
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "seed" => {
                self.seed = value
                    .parse()
                    .map_err(|_| format!("expected a whole number, found `{value}`"))?;
            }
            "drop" => self.drop_every = every(value)?,
            "reset" => self.reset_every = every(value)?,
            "close" => self.close_every = every(value)?,
            "stall" => {
                let (e, l) = value
                    .split_once('/')
                    .ok_or("expected every/length, e.g. 300s/35s")?;
                let length = positive(l)?;
                self.stall = every(e)?.map(|e| (e, length));
            }
            "cut" => self.cut = Some(positive(value)?),
            "dup" => self.dup = probability(value)?,
            "reorder" => self.reorder = probability(value)?,
            "late" => self.late = probability(value)?,
            "malformed" => self.malformed = probability(value)?,
            "r503" => self.rest_503 = probability(value)?,
            "delay" => self.delay = chance(value)?,
            "r429" => self.rest_429 = chance(value)?,
            "r418" => self.rest_418 = chance(value)?,
            "rdelay" => self.rest_delay = chance(value)?,
            "ounknown" => self.order_unknown = chance(value)?,
            "skew" => self.skew_ms = signed_ms(value)?,
            "delist" => self.delist.push(delisting(value)?),
            "maint" => {
                let (s, l) = value
                    .split_once('+')
                    .ok_or("expected start+length, e.g. 300s+20s")?;
                self.maintenance.push(Window {
                    start: duration(s)?,
                    length: positive(l)?,
                });
            }
            "until" => self.until = Some(positive(value)?),
            _ => return Err(format!("unknown fault `{key}`; keys: {KEYS}")),
        }
        Ok(())
    }

    fn apply_preset(&mut self, text: &str) -> Result<(), String> {
        for item in text.split(',') {
            self.apply_item(item.trim())?;
        }
        Ok(())
    }
}

impl fmt::Display for FaultPlan {
    /// The plan in its own syntax (what `perpdesk sim` prints), only the items that inject something.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| format!("{}ms", d.as_millis());
        let p = |p: f64| format!("{}%", (p * 10_000.0).round() / 100.0);
        let mut items = vec![format!("seed={}", self.seed)];
        for (k, v) in [
            ("drop", self.drop_every),
            ("reset", self.reset_every),
            ("close", self.close_every),
        ] {
            if let Some(v) = v {
                items.push(format!("{k}={}", d(v)));
            }
        }
        if let Some((e, l)) = self.stall {
            items.push(format!("stall={}/{}", d(e), d(l)));
        }
        if let Some(c) = self.cut {
            items.push(format!("cut={}", d(c)));
        }
        for (k, v) in [
            ("dup", self.dup),
            ("reorder", self.reorder),
            ("late", self.late),
            ("malformed", self.malformed),
            ("r503", self.rest_503),
        ] {
            if v > 0.0 {
                items.push(format!("{k}={}", p(v)));
            }
        }
        for (k, v) in [
            ("delay", self.delay),
            ("r429", self.rest_429),
            ("r418", self.rest_418),
            ("rdelay", self.rest_delay),
            ("ounknown", self.order_unknown),
        ] {
            if let Some(c) = v {
                items.push(format!("{k}={}/{}", p(c.probability), d(c.amount)));
            }
        }
        if self.skew_ms != 0 {
            items.push(format!("skew={}ms", self.skew_ms));
        }
        for x in &self.delist {
            let s = match &x.symbol {
                SymbolRef::Name(n) => n.clone(),
                SymbolRef::Index(i) => format!("#{i}"),
            };
            items.push(format!("delist={s}@{}:{}", d(x.after), x.status));
        }
        for w in &self.maintenance {
            items.push(format!("maint={}+{}", d(w.start), d(w.length)));
        }
        if let Some(u) = self.until {
            items.push(format!("until={}", d(u)));
        }
        f.write_str(&items.join(","))
    }
}

/// `250ms`, `30s`, `1.5s`, `5m`, `2h`, `1d`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("expected a duration with a unit (250ms, 30s, 5m, 2h), found `{s}`");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        "h" => n * 3_600e3,
        "d" => n * 86_400e3,
        _ => return Err(bad()),
    };
    if !ms.is_finite() || ms > 1e15 {
        return Err(bad());
    }
    Ok(Duration::from_millis(ms.round() as u64))
}

fn positive(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err(format!("must be longer than zero, found `{}`", s.trim()));
    }
    Ok(d)
}

/// A mean interval; `0s` or `off` turns the fault off.
fn every(s: &str) -> Result<Option<Duration>, String> {
    if s.trim() == "off" {
        return Ok(None);
    }
    let d = duration(s)?;
    Ok((!d.is_zero()).then_some(d))
}

fn signed_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    Ok(sign * i64::try_from(duration(rest)?.as_millis()).map_err(|_| format!("`{s}` is too large"))?)
}

/// `5%` or `0.05`.
pub fn probability(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let bad = || format!("expected a probability like 5% or 0.05, found `{s}`");
    let p = match s.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => s.parse::<f64>().map_err(|_| bad())?,
    };
    if !(0.0..=1.0).contains(&p) {
        return Err(format!(
            "a probability is between 0 and 1 (0% and 100%), found `{s}`"
        ));
    }
    Ok(p)
}

fn chance(s: &str) -> Result<Option<Chance>, String> {
    if s.trim() == "off" {
        return Ok(None);
    }
    let (p, d) = s
        .split_once('/')
        .ok_or_else(|| format!("expected probability/duration, e.g. 1%/2s, found `{}`", s.trim()))?;
    let probability = probability(p)?;
    let amount = positive(d)?;
    Ok((probability > 0.0).then_some(Chance { probability, amount }))
}

fn delisting(s: &str) -> Result<Delisting, String> {
    let (who, rest) = s
        .split_once('@')
        .ok_or("expected SYMBOL@after or #k@after, e.g. BTCUSDT@120s")?;
    let (after, status) = match rest.split_once(':') {
        Some((a, st)) => (a, st.trim()),
        None => (rest, "SETTLING"),
    };
    if status.is_empty()
        || status == "TRADING"
        || !status.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    {
        return Err(format!(
            "the status a symbol leaves TRADING for is an upper-case venue status (SETTLING, CLOSE, PENDING_TRADING), found `{status}`"
        ));
    }
    let who = who.trim();
    let symbol = if let Some(k) = who.strip_prefix('#') {
        SymbolRef::Index(
            k.parse()
                .map_err(|_| format!("`#k` takes a whole number, found `{who}`"))?,
        )
    } else if !who.is_empty()
        && who
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        SymbolRef::Name(who.to_owned())
    } else {
        return Err(format!(
            "expected an upper-case symbol such as BTCUSDT or #k, found `{who}`"
        ));
    };
    Ok(Delisting {
        symbol,
        after: duration(after)?,
        status: status.to_owned(),
    })
}

/// How many faults of each kind were injected (read by tests and printed by `perpdesk sim`).
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub connections: AtomicU64,
    pub drops: AtomicU64,
    pub resets: AtomicU64,
    pub closes: AtomicU64,
    pub stalls: AtomicU64,
    pub cuts: AtomicU64,
    pub duplicates: AtomicU64,
    pub reorders: AtomicU64,
    pub late: AtomicU64,
    pub malformed: AtomicU64,
    pub delays: AtomicU64,
    pub rest_429: AtomicU64,
    pub rest_418: AtomicU64,
    pub rest_503: AtomicU64,
    pub rest_1021: AtomicU64,
    pub rest_delays: AtomicU64,
    /// Order POSTs given an unknown outcome (`ounknown`).
    pub order_unknown: AtomicU64,
    pub maintenance_refusals: AtomicU64,
}

impl FaultCounts {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `name=count` for every non-zero count.
    pub fn summary(&self) -> String {
        let all = [
            ("connections", &self.connections),
            ("drops", &self.drops),
            ("resets", &self.resets),
            ("closes", &self.closes),
            ("stalls", &self.stalls),
            ("cuts", &self.cuts),
            ("duplicates", &self.duplicates),
            ("reorders", &self.reorders),
            ("late", &self.late),
            ("malformed", &self.malformed),
            ("delays", &self.delays),
            ("429", &self.rest_429),
            ("418", &self.rest_418),
            ("503", &self.rest_503),
            ("-1021", &self.rest_1021),
            ("rest delays", &self.rest_delays),
            ("unknown order outcomes", &self.order_unknown),
            ("maintenance refusals", &self.maintenance_refusals),
        ];
        all.iter()
            .map(|(k, v)| (k, v.load(Ordering::Relaxed)))
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a REST request gets instead of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestFault {
    /// HTTP status, venue code, message, `Retry-After` seconds.
    Reject {
        status: u16,
        code: i64,
        msg: String,
        retry_after: Option<u64>,
    },
}

/// The three bodies of HTTP 503 (`binance::errors`): unknown outcome, certain failure, throttled.
pub const BODIES_503: [(i64, &str); 3] = [
    (-1000, crate::binance::errors::MSG_503_UNKNOWN),
    (-1001, crate::binance::errors::MSG_503_UNAVAILABLE),
    (-1008, crate::binance::errors::MSG_THROTTLED),
];

/// The running plan of one simulator: the time base, the REST generator, the ban, the counts.
#[derive(Debug)]
pub struct FaultState {
    plan: FaultPlan,
    started: Instant,
    rest_rng: Mutex<ChaCha8Rng>,
    banned_until: Mutex<Option<Instant>>,
    /// Nothing is injected while set ([`FaultState::set_calm`]).
    calm: AtomicBool,
    pub counts: FaultCounts,
}

impl FaultState {
    pub fn new(plan: FaultPlan) -> Self {
        let rest_rng = ChaCha8Rng::seed_from_u64(plan.seed ^ 0x005e_ed0f_4e57);
        Self {
            plan,
            started: Instant::now(),
            rest_rng: Mutex::new(rest_rng),
            banned_until: Mutex::new(None),
            calm: AtomicBool::new(false),
            counts: FaultCounts::default(),
        }
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Calms the venue (`true`: nothing injected from now on, a ban in force lifted) or lets the
    /// plan loose again.
    pub fn set_calm(&self, calm: bool) {
        self.calm.store(calm, Ordering::Relaxed);
        if calm {
            *self.banned_until.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Nothing is injected: calmed by the test, or past the plan's `until`.
    pub fn is_calm(&self) -> bool {
        self.calm.load(Ordering::Relaxed) || self.plan.until.is_some_and(|until| self.elapsed() >= until)
    }

    /// Inside a maintenance window now.
    pub fn in_maintenance(&self) -> bool {
        if self.is_calm() {
            return false;
        }
        let t = self.elapsed();
        self.plan
            .maintenance
            .iter()
            .any(|w| t >= w.start && t < w.start + w.length)
    }

    /// Counts one refused WebSocket upgrade or closed connection because of maintenance.
    pub fn note_maintenance_refusal(&self) {
        FaultCounts::bump(&self.counts.maintenance_refusals);
    }

    /// The delistings in force now: (symbol, status).
    pub fn delisted_now(&self) -> impl Iterator<Item = (&SymbolRef, &str)> {
        let t = self.elapsed();
        self.plan
            .delist
            .iter()
            .filter(move |d| t >= d.after)
            .map(|d| (&d.symbol, d.status.as_str()))
    }

    /// Whether a request to `path` with `query` is refused, and how. `venue_now` is the (skewed)
    /// venue clock, for the `timestamp` check. Also returns a delay to apply before answering.
    pub fn on_rest(&self, path: &str, query: &str, venue_now: i64) -> (Option<RestFault>, Option<Duration>) {
        if !path.starts_with("/fapi/") || self.is_calm() {
            return (None, None);
        }
        if self.in_maintenance() {
            FaultCounts::bump(&self.counts.rest_503);
            return (
                Some(RestFault::Reject {
                    status: 503,
                    code: -1001,
                    msg: crate::binance::errors::MSG_503_UNAVAILABLE.to_owned(),
                    retry_after: None,
                }),
                None,
            );
        }
        let now = Instant::now();
        {
            let banned = self.banned_until.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(until) = *banned
                && until > now
                && !self.is_calm()
            {
                FaultCounts::bump(&self.counts.rest_418);
                return (Some(ban(until - now)), None);
            }
        }
        if self.plan.skew_ms != 0
            && let Some(ts) = query_param(query, "timestamp").and_then(|t| t.parse::<i64>().ok())
        {
            let window = query_param(query, "recvWindow")
                .and_then(|w| w.parse::<i64>().ok())
                .unwrap_or(DEFAULT_RECV_WINDOW_MS);
            // The venue's rule: refused when the request is from the future by more than a second,
            // or older than recvWindow.
            if ts > venue_now + 1_000 || venue_now - ts > window {
                FaultCounts::bump(&self.counts.rest_1021);
                return (
                    Some(RestFault::Reject {
                        status: 400,
                        code: -1021,
                        msg: "Timestamp for this request is outside of the recvWindow.".to_owned(),
                        retry_after: None,
                    }),
                    None,
                );
            }
        }
        // The venue's clock rule above holds for ever; the injected faults below stop at `until`.
        if self.is_calm() {
            return (None, None);
        }
        let mut rng = self.rest_rng.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = self.plan.rest_418
            && rng.random_bool(c.probability)
        {
            *self.banned_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(now + c.amount);
            FaultCounts::bump(&self.counts.rest_418);
            return (Some(ban(c.amount)), None);
        }
        if let Some(c) = self.plan.rest_429
            && rng.random_bool(c.probability)
        {
            FaultCounts::bump(&self.counts.rest_429);
            return (
                Some(RestFault::Reject {
                    status: 429,
                    code: -1003,
                    msg: "Too many requests; current limit is 2400 requests per minute.".to_owned(),
                    retry_after: Some(c.amount.as_secs().max(1)),
                }),
                None,
            );
        }
        if self.plan.rest_503 > 0.0 && rng.random_bool(self.plan.rest_503) {
            FaultCounts::bump(&self.counts.rest_503);
            let (code, msg) = BODIES_503[rng.random_range(0..BODIES_503.len())];
            return (
                Some(RestFault::Reject {
                    status: 503,
                    code,
                    msg: msg.to_owned(),
                    retry_after: None,
                }),
                None,
            );
        }
        let delay = self.plan.rest_delay.and_then(|c| {
            rng.random_bool(c.probability).then(|| {
                FaultCounts::bump(&self.counts.rest_delays);
                rand_duration(&mut *rng, c.amount)
            })
        });
        (None, delay)
    }

    /// Whether an order POST that passed [`FaultState::on_rest`] gets an unknown outcome, and which:
    /// the venue side (created and visible, visible only after up to the plan's duration, or not
    /// created) and the reply delay (none, or the plan's duration: longer than the client's timeout,
    /// that is a timeout). Drawn from the REST generator, in request order.
    pub fn on_order_post(&self) -> Option<OrderFault> {
        let c = self.plan.order_unknown.filter(|_| !self.is_calm())?;
        let mut rng = self.rest_rng.lock().unwrap_or_else(PoisonError::into_inner);
        if !rng.random_bool(c.probability) {
            return None;
        }
        FaultCounts::bump(&self.counts.order_unknown);
        let venue = match rng.random_range(0..3) {
            0 => FaultVenue::Exists,
            1 => FaultVenue::AppearsAfter(rand_duration(&mut *rng, c.amount)),
            _ => FaultVenue::Never,
        };
        let reply_delay = if rng.random_bool(0.5) {
            Duration::ZERO
        } else {
            c.amount
        };
        Some(OrderFault { venue, reply_delay })
    }

    /// The faults of a new WebSocket connection (its own generator, from the seed and its ordinal).
    pub fn connection(&self) -> ConnectionFaults<'_> {
        let n = self.counts.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionFaults {
            state: self,
            rng: ChaCha8Rng::seed_from_u64(self.plan.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            opened: Instant::now(),
            stalled_until: None,
        }
    }
}

fn ban(left: Duration) -> RestFault {
    RestFault::Reject {
        status: 418,
        code: -1003,
        msg: "Way too many requests; IP banned until the Retry-After has passed.".to_owned(),
        retry_after: Some(left.as_secs_f64().ceil() as u64),
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix(key)?.strip_prefix('='))
}

fn rand_duration(rng: &mut impl Rng, max: Duration) -> Duration {
    Duration::from_millis(rng.random_range(0..=max.as_millis() as u64))
}

/// What a connection does at a push tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionAction {
    /// Push as usual.
    Push,
    /// Stalled: push nothing (pings and requests are still answered).
    Stall,
    /// Close the TCP connection without a close frame.
    Drop,
    /// Close the TCP connection with a reset.
    Reset,
    /// Send a close frame, then close.
    Close { code: u16, reason: &'static str },
}

/// The close frames a `close` fault sends: going away, internal error, try again later.
const CLOSES: [(u16, &str); 3] = [
    (1001, "going away"),
    (1011, "internal error"),
    (1013, "try again later"),
];

/// One connection's faults.
#[derive(Debug)]
pub struct ConnectionFaults<'a> {
    state: &'a FaultState,
    rng: ChaCha8Rng,
    opened: Instant,
    stalled_until: Option<Instant>,
}

impl ConnectionFaults<'_> {
    /// The action at a push tick that comes `dt` after the previous one.
    pub fn on_tick(&mut self, dt: Duration) -> ConnectionAction {
        let plan = &self.state.plan;
        let counts = &self.state.counts;
        let now = Instant::now();
        if self.state.in_maintenance() {
            self.state.note_maintenance_refusal();
            return ConnectionAction::Close {
                code: 1001,
                reason: "service under maintenance",
            };
        }
        if now.duration_since(self.opened) >= plan.cut.unwrap_or(VENUE_CONNECTION_LIFETIME) {
            FaultCounts::bump(&counts.cuts);
            return ConnectionAction::Close {
                code: 1000,
                reason: "connection lifetime reached",
            };
        }
        if self.state.is_calm() {
            self.stalled_until = None;
            return ConnectionAction::Push;
        }
        if let Some(until) = self.stalled_until {
            if now < until {
                return ConnectionAction::Stall;
            }
            self.stalled_until = None;
        }
        let mut hit = |every: Option<Duration>| {
            every.is_some_and(|e| {
                self.rng
                    .random_bool((dt.as_secs_f64() / e.as_secs_f64()).min(1.0))
            })
        };
        if hit(plan.drop_every) {
            FaultCounts::bump(&counts.drops);
            return ConnectionAction::Drop;
        }
        if hit(plan.reset_every) {
            FaultCounts::bump(&counts.resets);
            return ConnectionAction::Reset;
        }
        if hit(plan.close_every) {
            FaultCounts::bump(&counts.closes);
            let (code, reason) = CLOSES[self.rng.random_range(0..CLOSES.len())];
            return ConnectionAction::Close { code, reason };
        }
        if let Some((every, length)) = plan.stall
            && hit(Some(every))
        {
            FaultCounts::bump(&counts.stalls);
            self.stalled_until = Some(now + length);
            return ConnectionAction::Stall;
        }
        ConnectionAction::Push
    }

    /// How long to hold this push back, if at all.
    pub fn delay(&mut self) -> Option<Duration> {
        let c = self.state.plan.delay.filter(|_| !self.state.is_calm())?;
        self.rng.random_bool(c.probability).then(|| {
            FaultCounts::bump(&self.state.counts.delays);
            rand_duration(&mut self.rng, c.amount)
        })
    }

    /// Duplicates, reorders, late non-final copies and garbage frames, applied to one push's frames.
    /// Real frames are never removed or altered: whatever the mangling, the data the client needs is
    /// all there, in some order, with extras.
    pub fn mangle(&mut self, frames: &mut Vec<String>) {
        let plan = &self.state.plan;
        if self.state.is_calm()
            || (plan.dup == 0.0 && plan.reorder == 0.0 && plan.late == 0.0 && plan.malformed == 0.0)
        {
            return;
        }
        let counts = &self.state.counts;
        let mut out = Vec::with_capacity(frames.len() + 4);
        for f in frames.drain(..) {
            if plan.malformed > 0.0 && self.rng.random_bool(plan.malformed) {
                FaultCounts::bump(&counts.malformed);
                out.push(garbage(&mut self.rng, &f));
            }
            let closed_kline = f.contains("\"x\":true");
            let late = closed_kline && plan.late > 0.0 && self.rng.random_bool(plan.late);
            let dup = plan.dup > 0.0 && self.rng.random_bool(plan.dup);
            if dup {
                FaultCounts::bump(&counts.duplicates);
                out.push(f.clone());
            }
            if late {
                FaultCounts::bump(&counts.late);
                let stale = f.replacen("\"x\":true", "\"x\":false", 1);
                out.push(f);
                out.push(stale);
            } else {
                out.push(f);
            }
        }
        if plan.reorder > 0.0 {
            let mut i = 0;
            while i + 1 < out.len() {
                if self.rng.random_bool(plan.reorder) {
                    FaultCounts::bump(&counts.reorders);
                    out.swap(i, i + 1);
                    i += 2;
                } else {
                    i += 1;
                }
            }
        }
        *frames = out;
    }
}

/// A frame the client must count and skip: a truncated copy of a real one, a wrong type, bad JSON,
/// a non-finite price, or an unknown event.
fn garbage(rng: &mut impl Rng, real: &str) -> String {
    match rng.random_range(0..5) {
        0 => {
            let mut cut = rng.random_range(0..real.len().max(1));
            while !real.is_char_boundary(cut) {
                cut -= 1;
            }
            real[..cut].to_owned()
        }
        1 => r#"{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":"soon","s":"BTCUSDT"}}"#.to_owned(),
        2 => "\u{1}not json at all".to_owned(),
        3 => real.replacen("\"c\":\"", "\"c\":\"NaN\",\"_\":\"", 1).replacen(
            "\"p\":\"",
            "\"p\":\"1e999\",\"_\":\"",
            1,
        ),
        _ => r#"{"stream":"btcusdt@kline_1m","data":[[["nested"]]]}"#.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_later_items_override() {
        let heavy = FaultPlan::parse("heavy").expect("heavy");
        assert!(heavy.dup > 0.0 && heavy.rest_418.is_some() && !heavy.maintenance.is_empty());
        assert_eq!(heavy.skew_ms, 1_500);
        let p = FaultPlan::parse("heavy, seed=9; dup=0 # comment\nskew=-2s").expect("parses");
        assert_eq!(p.seed, 9);
        assert_eq!(p.dup, 0.0);
        assert_eq!(p.skew_ms, -2_000);
        assert!(FaultPlan::parse("none").expect("none").is_quiet());
        assert!(FaultPlan::parse("heavy,none").expect("reset").is_quiet());
        assert!(!FaultPlan::parse("light").expect("light").is_quiet());
    }

    #[test]
    fn every_key_parses() {
        let p = FaultPlan::parse(
            "drop=10s,reset=1m,close=2h,stall=30s/5s,cut=3s,dup=5%,reorder=0.1,late=1%,malformed=2%,\
             delay=5%/300ms,r429=1%/2s,r418=0.5%/3s,r503=4%,rdelay=2%/1s,ounknown=3%/800ms,\
             skew=+1500ms,delist=BTCUSDT@2m:CLOSE,delist=#3@10s,maint=1m+20s",
        )
        .expect("parses");
        assert_eq!(p.drop_every, Some(Duration::from_secs(10)));
        assert_eq!(p.stall, Some((Duration::from_secs(30), Duration::from_secs(5))));
        assert_eq!(p.cut, Some(Duration::from_secs(3)));
        assert_eq!(p.reorder, 0.1);
        assert_eq!(
            p.rest_418,
            Some(Chance {
                probability: 0.005,
                amount: Duration::from_secs(3)
            })
        );
        assert_eq!(
            p.order_unknown,
            Some(Chance {
                probability: 0.03,
                amount: Duration::from_millis(800)
            })
        );
        assert_eq!(
            p.delist,
            vec![
                Delisting {
                    symbol: SymbolRef::Name("BTCUSDT".into()),
                    after: Duration::from_secs(120),
                    status: "CLOSE".into()
                },
                Delisting {
                    symbol: SymbolRef::Index(3),
                    after: Duration::from_secs(10),
                    status: "SETTLING".into()
                }
            ]
        );
        assert_eq!(
            p.maintenance,
            vec![Window {
                start: Duration::from_secs(60),
                length: Duration::from_secs(20)
            }]
        );
        // The printed form parses back to the same plan.
        assert_eq!(FaultPlan::parse(&p.to_string()).expect("round trip"), p);
        let heavy = FaultPlan::parse("heavy").expect("heavy");
        assert_eq!(FaultPlan::parse(&heavy.to_string()).expect("round trip"), heavy);
    }

    #[test]
    fn bad_items_are_named() {
        for (text, item, needle) in [
            ("heavy,dup=lots", "dup=lots", "probability"),
            ("dup=150%", "dup=150%", "between 0 and 1"),
            ("drop=30", "drop=30", "unit"),
            ("stall=30s", "stall=30s", "every/length"),
            ("wobble=1s", "wobble=1s", "unknown fault `wobble`"),
            ("extreme", "extreme", "not a preset"),
            ("r429=5%", "r429=5%", "probability/duration"),
            ("ounknown=5%", "ounknown=5%", "probability/duration"),
            ("delist=btcusdt@1s", "delist=btcusdt@1s", "upper-case"),
            ("delist=BTCUSDT@1s:TRADING", "delist=BTCUSDT@1s:TRADING", "status"),
            ("maint=30s", "maint=30s", "start+length"),
            ("cut=0s", "cut=0s", "longer than zero"),
            ("seed=-1", "seed=-1", "whole number"),
        ] {
            let err = FaultPlan::parse(text).expect_err(text).to_string();
            assert!(err.contains(&format!("`{item}`")), "{text}: {err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_plan_file_names_file_and_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("plan.txt");
        std::fs::write(&path, "# soak plan\nheavy\nseed=3\n\ndup=often\n").expect("write");
        let err = FaultPlan::load(path.to_str().expect("utf-8")).expect_err("bad line");
        assert!(err.to_string().contains("line 5"), "{err}");
        std::fs::write(&path, "heavy # everything\nseed=3, dup=1%\n").expect("write");
        let plan = FaultPlan::load(path.to_str().expect("utf-8")).expect("good file");
        assert_eq!((plan.seed, plan.dup), (3, 0.01));
    }

    #[tokio::test]
    async fn mangling_keeps_every_real_frame_and_is_seeded() {
        let plan = FaultPlan::parse("seed=5,dup=20%,reorder=20%,late=20%,malformed=20%").expect("plan");
        let frames: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    r#"{{"stream":"s","data":{{"k":{{"t":{i},"x":{}}}}}}}"#,
                    i % 2 == 0
                )
            })
            .collect();
        let run = || {
            let state = FaultState::new(plan.clone());
            let mut conn = state.connection();
            let mut out = frames.clone();
            conn.mangle(&mut out);
            (out, state.counts.summary())
        };
        let (a, counts) = run();
        let (b, _) = run();
        assert_eq!(a, b, "same seed, same frames");
        for f in &frames {
            assert!(a.contains(f), "{f} lost");
        }
        assert!(a.len() > frames.len());
        for kind in ["duplicates", "reorders", "late", "malformed"] {
            assert!(counts.contains(kind), "{counts}");
        }
    }

    // Paused: `until` is tokio time, so a stalled test thread cannot pass the 50 ms before the checks.
    #[tokio::test(start_paused = true)]
    async fn every_fault_stops_at_until_as_when_calmed() {
        let plan =
            FaultPlan::parse("r418=100%/1h,maint=0s+1h,stall=1ms/1h,skew=3s,until=50ms").expect("plan");
        assert_eq!(plan.until, Some(Duration::from_millis(50)));
        assert!(plan.to_string().ends_with(",until=50ms"), "{plan}");
        let state = FaultState::new(plan);
        assert!(state.in_maintenance());
        assert!(state.on_rest("/fapi/v1/klines", "", 0).0.is_some());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(state.is_calm() && !state.in_maintenance());
        assert_eq!(
            state.on_rest("/fapi/v1/klines", "", 0),
            (None, None),
            "no ban, no window"
        );
        let stale = state.on_rest("/fapi/v1/order", "timestamp=1", 1_000_000).0;
        assert_eq!(
            stale, None,
            "as calm as `set_calm`: no -1021 from the skew either"
        );
        let mut conn = state.connection();
        assert_eq!(conn.on_tick(Duration::from_secs(1)), ConnectionAction::Push);
        assert_eq!(conn.delay(), None);
    }

    #[tokio::test]
    async fn rest_faults_follow_the_plan() {
        let state = FaultState::new(FaultPlan::parse("r418=100%/2s").expect("plan"));
        let (fault, _) = state.on_rest("/fapi/v1/time", "", 0);
        assert!(matches!(
            fault,
            Some(RestFault::Reject {
                status: 418,
                retry_after: Some(2),
                ..
            })
        ));
        // The ban holds for every request until it expires, whatever the dice say.
        let (fault, _) = state.on_rest("/fapi/v1/klines", "", 0);
        assert!(matches!(fault, Some(RestFault::Reject { status: 418, .. })));
        // WebSocket paths are not REST.
        assert_eq!(state.on_rest("/stream", "", 0), (None, None));

        let state = FaultState::new(FaultPlan::parse("skew=3s").expect("plan"));
        let now = 1_000_000;
        let (fault, _) = state.on_rest(
            "/fapi/v1/order",
            &format!("timestamp={}", now - 3_000 - 5_001),
            now,
        );
        assert!(matches!(fault, Some(RestFault::Reject { code: -1021, .. })));
        let (fault, _) = state.on_rest(
            "/fapi/v1/order",
            &format!("timestamp={}&recvWindow=10000", now - 8_001),
            now,
        );
        assert_eq!(fault, None, "inside a wider recvWindow");
        assert_eq!(
            state.on_rest("/fapi/v1/order", "timestamp=1000000", now),
            (None, None)
        );

        let state = FaultState::new(FaultPlan::parse("seed=2,r503=100%").expect("plan"));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..60 {
            if let (
                Some(RestFault::Reject {
                    status: 503, code, ..
                }),
                _,
            ) = state.on_rest("/fapi/v1/time", "", 0)
            {
                seen.insert(code);
            }
        }
        assert_eq!(seen.len(), 3, "all three 503 variants: {seen:?}");
    }

    #[tokio::test]
    async fn order_posts_get_every_unknown_outcome_variant_at_the_plan_rate_and_repeatably() {
        let plan = FaultPlan::parse("seed=6,ounknown=25%/700ms").expect("plan");
        let draw = || {
            let state = FaultState::new(plan.clone());
            let faults: Vec<_> = (0..2_000).map(|_| state.on_order_post()).collect();
            (faults, state.counts.order_unknown.load(Ordering::Relaxed))
        };
        let (faults, counted) = draw();
        assert_eq!(draw().0, faults, "same seed, same outcomes");
        let hits: Vec<OrderFault> = faults.iter().flatten().copied().collect();
        assert_eq!(hits.len() as u64, counted);
        assert!((400..=600).contains(&hits.len()), "{} of 2000 at 25%", hits.len());
        let count = |f: &dyn Fn(&OrderFault) -> bool| hits.iter().filter(|h| f(h)).count();
        assert!(count(&|h| h.venue == FaultVenue::Exists) > 100);
        assert!(count(&|h| h.venue == FaultVenue::Never) > 100);
        assert!(count(&|h| matches!(h.venue, FaultVenue::AppearsAfter(_))) > 100);
        assert!(hits.iter().all(|h| match h.venue {
            FaultVenue::AppearsAfter(d) => d <= Duration::from_millis(700),
            _ => true,
        }));
        assert!(count(&|h| h.reply_delay.is_zero()) > 150, "immediate 503s");
        assert!(
            count(&|h| h.reply_delay == Duration::from_millis(700)) > 150,
            "late answers (timeouts)"
        );
        // Without the key, never.
        let quiet = FaultState::new(FaultPlan::parse("seed=6,r503=50%").expect("plan"));
        assert!((0..100).all(|_| quiet.on_order_post().is_none()));
    }

    #[tokio::test]
    async fn a_calmed_venue_injects_nothing_until_let_loose_again() {
        let plan = FaultPlan::parse(
            "seed=3,drop=1s,stall=1s/1h,dup=100%,malformed=100%,delay=100%/1s,r418=100%/5s,r503=100%,\
             ounknown=100%/1s,maint=0s+1h",
        )
        .expect("plan");
        let state = FaultState::new(plan);
        assert!(state.in_maintenance());
        let mut conn = state.connection();
        let dt = Duration::from_millis(250);
        assert_ne!(conn.on_tick(dt), ConnectionAction::Push, "maintenance closes");
        state.set_calm(true);
        assert!(!state.in_maintenance());
        assert!((0..400).all(|_| conn.on_tick(dt) == ConnectionAction::Push));
        assert_eq!(conn.delay(), None);
        let mut frames = vec![r#"{"k":{"x":true}}"#.to_owned()];
        conn.mangle(&mut frames);
        assert_eq!(frames, [r#"{"k":{"x":true}}"#]);
        assert_eq!(state.on_rest("/fapi/v1/klines", "", 0), (None, None));
        assert_eq!(state.on_order_post(), None);
        // Loose again: the plan applies (the maintenance window comes first).
        state.set_calm(false);
        assert!(matches!(
            state.on_rest("/fapi/v1/time", "", 0).0,
            Some(RestFault::Reject { status: 503, .. })
        ));
        assert!(state.in_maintenance());
    }

    #[tokio::test]
    async fn connection_faults_fire_at_their_rate() {
        let plan = FaultPlan::parse("seed=4,drop=10s,cut=1h").expect("plan");
        let state = FaultState::new(plan);
        let mut conn = state.connection();
        let dt = Duration::from_millis(250);
        let drops = (0..4_000)
            .filter(|_| conn.on_tick(dt) == ConnectionAction::Drop)
            .count();
        // 1000 s of ticks at one drop per 10 s on average.
        assert!((60..=140).contains(&drops), "{drops}");
    }
}
