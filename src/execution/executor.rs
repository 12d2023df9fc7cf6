//! The executor task: carries out [`ExecCommand`]s on the venue, one at a time, and follows the user
//! data stream. See the module docs of `execution` for the order flow.
//!
//! Commands are handled in the order the engine sent them, so a close can never overtake its open.
//! Everything here awaits the venue; nothing here is reachable from the engine task except through
//! the command channel and the reports.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, RwLock},
    time::Duration,
};

use rust_decimal::{Decimal, prelude::ToPrimitive};
use tokio::sync::{mpsc, watch};

use super::{ExecCommand, ExecError, ExecReport, GateState};
use crate::{
    binance::{
        filters::{OrderSide, SymbolFilters},
        governor::RateGovernor,
        orders::{
            LocalBook, MarginType, NewOrder, OrderClient, OrderError, Placed, PositionSide, ReconReport,
            ReconciliationGate, TrackedOrder,
        },
        parse::SymbolTable,
        rest::MarketRest,
        trade_wire::OrderResponse,
        user_stream::{
            BookChange, KeeperSettings, KeeperStats, OrderOrigin, UserBook, UserStreamConfig,
            UserStreamEvent, run_keeper, run_user_stream,
        },
    },
    domain::{Side, SymbolId},
    positions::PositionId,
    risk::BracketTable,
};

/// Tunables of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// WebSocket base of the user data stream (`--ws-url`).
    pub ws_url: String,
    /// Margin type set on every traded symbol (the risk module's liquidation price assumes isolated).
    pub margin: MarginType,
    /// How often a closed gate is retried (a failed reconciliation, or one after a reconnect).
    pub reconcile_retry: Duration,
    /// Rounds of cancel-and-close the kill switch makes before reporting what is left.
    pub flatten_rounds: u32,
}

impl ExecutorSettings {
    pub fn new(ws_url: &str) -> Self {
        Self {
            ws_url: ws_url.to_owned(),
            margin: MarginType::Isolated,
            reconcile_retry: Duration::from_secs(5),
            flatten_rounds: 3,
        }
    }
}

/// What an order of ours is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Entry,
    Stop,
    TakeProfit,
    Exit,
}

/// A position mirrored on the venue.
#[derive(Debug, Clone)]
struct Live {
    symbol: String,
    side: Side,
    /// Filled entry quantity (what a reduce-only exit must close).
    qty: Decimal,
    stop_id: Option<String>,
    /// Trigger price of the resting stop (on the tick grid; zero when unknown).
    stop_price: Decimal,
    tp_id: Option<String>,
}

fn entry_side(side: Side) -> OrderSide {
    match side {
        Side::Long => OrderSide::Buy,
        Side::Short => OrderSide::Sell,
    }
}

fn exit_side(side: Side) -> OrderSide {
    match side {
        Side::Long => OrderSide::Sell,
        Side::Short => OrderSide::Buy,
    }
}

fn decimal(v: f64) -> Result<Decimal, ExecError> {
    Decimal::try_from(v).map_err(|_| ExecError::BadNumber(v))
}

fn parse(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

/// Executed quantity and average price of an order answer.
fn fill_of(o: &OrderResponse) -> (Decimal, Decimal) {
    let qty = parse(&o.executed_qty);
    let avg = parse(&o.avg_price);
    let avg = if avg.is_zero() && !qty.is_zero() {
        parse(&o.cum_quote).checked_div(qty).unwrap_or_default()
    } else {
        avg
    };
    (qty, avg)
}

/// The venue refused the request (as opposed to a local refusal or a transport failure).
fn venue_reject(e: &OrderError) -> bool {
    matches!(e, OrderError::Venue(_)) && e.code().is_some()
}

/// The executor's state. Built by [`Executor::start`], run by [`Executor::run`].
pub struct Executor {
    orders: OrderClient,
    /// The venue's public REST (mark prices for restored positions found flat).
    public: MarketRest,
    settings: ExecutorSettings,
    table: Arc<RwLock<SymbolTable>>,
    filters: HashMap<String, SymbolFilters>,
    leverage: HashMap<String, u32>,
    margin_set: HashSet<String>,
    gate: ReconciliationGate,
    gate_reported: Option<GateState>,
    book: UserBook,
    live: BTreeMap<PositionId, Live>,
    /// Journal-restored positions waiting for the next reconciliation to be matched with the venue.
    adopting: BTreeMap<PositionId, AdoptRequest>,
    by_client: HashMap<String, (PositionId, Role)>,
    /// The leverage brackets were loaded once (they are retried after each reconciliation until).
    brackets_loaded: bool,
    stream_up: bool,
    reports: mpsc::Sender<ExecReport>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("orders", &self.orders)
            .field("live", &self.live.len())
            .field("gate", self.gate.state())
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// Reads the venue's filters and rate limits (public `exchangeInfo` at `rest_url`) and syncs the
    /// clock. `table` resolves the engine's symbol ids to venue names.
    pub async fn start(
        orders: OrderClient,
        rest_url: &str,
        settings: ExecutorSettings,
        table: Arc<RwLock<SymbolTable>>,
        reports: mpsc::Sender<ExecReport>,
    ) -> Result<Self, ExecError> {
        let public = MarketRest::new(rest_url).map_err(|e| ExecError::ExchangeInfo(e.to_string()))?;
        let info = public
            .exchange_info()
            .await
            .map_err(|e| ExecError::ExchangeInfo(e.to_string()))?;
        let filters = info
            .symbols
            .iter()
            .filter_map(|s| SymbolFilters::from_symbol_info(s).ok())
            .map(|f| (f.symbol.clone(), f))
            .collect();
        if let Ok(governor) = RateGovernor::from_rate_limits(&info.rate_limits) {
            orders.rest().set_governor(governor);
        }
        if let Err(error) = orders.rest().sync_clock().await {
            // The clock gate refuses orders until a later sync succeeds (run_clock_sync retries).
            tracing::warn!(%error, "clock sync at start failed; orders wait for the next sync");
        }
        Ok(Self {
            orders,
            public,
            settings,
            table,
            filters,
            leverage: HashMap::new(),
            margin_set: HashSet::new(),
            gate: ReconciliationGate::new(),
            gate_reported: None,
            book: UserBook::new(),
            live: BTreeMap::new(),
            adopting: BTreeMap::new(),
            by_client: HashMap::new(),
            brackets_loaded: false,
            stream_up: false,
            reports,
        })
    }

    /// Runs until `stop`: the clock re-sync, the listenKey keeper and the user stream beside it,
    /// commands and stream events in one loop. Positions still open at the end stay on the venue with
    /// their stop and target resting there.
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<ExecCommand>,
        stop: watch::Receiver<bool>,
    ) {
        let rest = Arc::clone(self.orders.rest());
        let clock_task = {
            let (rest, stop) = (Arc::clone(&rest), stop.clone());
            tokio::spawn(async move { rest.run_clock_sync(stop).await })
        };
        let (rotate_tx, rotate_rx) = mpsc::channel(8);
        let (key_tx, mut key_rx) = watch::channel(None);
        let keeper = {
            let (rest, stop) = (Arc::clone(&rest), stop.clone());
            tokio::spawn(async move {
                let stats = KeeperStats::default();
                run_keeper(
                    rest.as_ref(),
                    KeeperSettings::default(),
                    rotate_rx,
                    key_tx,
                    &stats,
                    stop,
                )
                .await;
            })
        };
        let (user_tx, mut user_rx) = mpsc::channel(1024);
        let stream = tokio::spawn(run_user_stream(
            UserStreamConfig::new(&self.settings.ws_url),
            key_rx.clone(),
            rotate_tx,
            user_tx,
            stop.clone(),
        ));
        let mut retry = tokio::time::interval(self.settings.reconcile_retry);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = stop;
        self.report_gate(GateState::Pending, "waiting for the user data stream".into())
            .await;
        loop {
            tokio::select! {
                biased;
                // A dropped sender also means stop (and would otherwise fire at once for ever).
                r = stop.changed() => if r.is_err() || *stop.borrow() { break },
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                ev = user_rx.recv() => match ev {
                    Some(ev) => self.on_user(ev).await,
                    None => break,
                },
                changed = key_rx.changed() => {
                    if changed.is_err() { break; }
                    if key_rx.borrow_and_update().is_some() {
                        self.report(ExecReport::ListenKey).await;
                    }
                }
                _ = retry.tick() => {
                    if self.stream_up && !self.gate.entries_allowed() {
                        self.reconcile().await;
                    }
                }
            }
        }
        for task in [clock_task, keeper, stream] {
            task.abort();
        }
    }

    async fn report(&self, r: ExecReport) {
        // The engine ends only at shutdown; a failed send then is harmless.
        let _ = self.reports.send(r).await;
    }

    async fn report_gate(&mut self, state: GateState, detail: String) {
        self.gate_reported = Some(state);
        tracing::info!(?state, %detail, "execution: reconciliation gate");
        self.report(ExecReport::Gate { state, detail }).await;
    }

    /// Carries out one command.
    pub async fn handle(&mut self, cmd: ExecCommand) {
        match cmd {
            ExecCommand::Open {
                position,
                symbol,
                side,
                qty,
                mark,
                leverage,
                stop_loss,
                take_profit,
            } => {
                let open = OpenRequest {
                    position,
                    symbol,
                    side,
                    qty,
                    mark,
                    leverage,
                    stop_loss,
                    take_profit,
                };
                if let Err((error, venue_reject)) = self.open(&open).await {
                    tracing::warn!(%position, %error, "entry not mirrored on the venue");
                    self.report(ExecReport::EntryFailed {
                        position,
                        error,
                        venue_reject,
                    })
                    .await;
                }
            }
            ExecCommand::Close { position, reason } => {
                tracing::info!(%position, reason = reason.name(), "execution: closing on the venue");
                self.close(position).await;
            }
            ExecCommand::KillSwitch => self.flatten().await,
            ExecCommand::MoveStop { position, stop } => self.move_stop(position, stop).await,
            ExecCommand::Adopt {
                position,
                symbol,
                side,
                qty,
                stop_loss,
                take_profit,
            } => {
                self.adopting.insert(
                    position,
                    AdoptRequest {
                        symbol,
                        side,
                        qty,
                        stop_loss,
                        take_profit,
                    },
                );
                // Before the first reconciliation it waits for it; after, it needs a fresh look.
                if self.gate.entries_allowed() {
                    self.reconcile().await;
                }
            }
        }
    }

    fn name_of(&self, id: SymbolId) -> Option<String> {
        self.table.read().ok()?.get(id).map(|s| s.name.clone())
    }

    /// The entry and its protection. `Err((message, venue_reject))` when nothing stays on the venue.
    async fn open(&mut self, o: &OpenRequest) -> Result<(), (String, bool)> {
        let local = |e: &dyn std::fmt::Display| (e.to_string(), false);
        if !self.gate.entries_allowed() {
            return Err(("not reconciled with the venue yet: no entry".into(), false));
        }
        let name = self
            .name_of(o.symbol)
            .ok_or_else(|| local(&ExecError::UnknownSymbol(format!("symbol #{}", o.symbol.0))))?;
        // One-way mode nets both sides of a symbol into one venue position: a second position there
        // would be merged into (or close) the first, so it is not mirrored.
        if self.live.values().any(|l| l.symbol == name) {
            return Err((
                format!("{name} already has a live position (one-way mode nets positions)"),
                false,
            ));
        }
        let filters = self
            .filters
            .get(&name)
            .cloned()
            .ok_or_else(|| local(&ExecError::UnknownSymbol(name.clone())))?;
        let mark = decimal(o.mark).map_err(|e| local(&e))?;
        if !self.margin_set.contains(&name) {
            self.orders
                .set_margin_type(&name, self.settings.margin)
                .await
                .map_err(|e| (format!("margin type: {e}"), venue_reject(&e)))?;
            self.margin_set.insert(name.clone());
        }
        let leverage = u32::from(o.leverage.max(1));
        if self.leverage.get(&name) != Some(&leverage) {
            self.orders
                .set_leverage(&name, leverage)
                .await
                .map_err(|e| (format!("leverage: {e}"), venue_reject(&e)))?;
            self.leverage.insert(name.clone(), leverage);
        }
        let qty = decimal(o.qty).map_err(|e| local(&e))?;
        let entry = NewOrder::market(&name, entry_side(o.side), qty)
            .rounded(&filters, mark)
            .map_err(|e| local(&e))?;
        let entry_id = self.orders.next_client_order_id();
        self.track(&entry_id, o.position, Role::Entry, entry.qty.unwrap_or(qty));
        let placed = match self.orders.place_with_id(&entry, &entry_id).await {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, OrderError::Unresolved { .. }) {
                    // The entry may or may not be on the venue: no further entry until a
                    // reconciliation has looked (the kill switch flattens it either way).
                    self.gate.invalidate("an entry's outcome is unknown");
                    self.report_gate(GateState::Unknown, format!("entry {entry_id}: {e}"))
                        .await;
                }
                return Err((format!("entry: {e}"), venue_reject(&e)));
            }
        };
        let Some(answer) = placed.order() else {
            return Err((
                "entry: not placed (unknown outcome resolved as absent)".into(),
                false,
            ));
        };
        let (filled, avg) = fill_of(answer);
        let mut live = Live {
            symbol: name.clone(),
            side: o.side,
            qty: filled,
            stop_id: None,
            stop_price: Decimal::ZERO,
            tp_id: None,
        };
        if !filled.is_zero() {
            self.report(ExecReport::EntryFilled {
                position: o.position,
                qty: filled.to_f64().unwrap_or(0.0),
                avg_price: avg.to_f64().unwrap_or(o.mark),
            })
            .await;
        }
        // The stop first: a position without it must not stay open.
        let stop_side = exit_side(o.side);
        let stop = NewOrder::stop_market(
            &name,
            stop_side,
            decimal(o.stop_loss).map_err(|e| local(&e))?,
            None,
        );
        match self
            .place_protective(&stop, &filters, mark, o.position, Role::Stop)
            .await
        {
            Ok((id, price)) => {
                live.stop_id = Some(id);
                live.stop_price = price;
            }
            Err(error) => {
                self.live.insert(o.position, live);
                self.close(o.position).await;
                self.report(ExecReport::ProtectionFailed {
                    position: o.position,
                    error: format!("stop: {error}"),
                })
                .await;
                return Ok(());
            }
        }
        let tp = NewOrder::take_profit_market(
            &name,
            stop_side,
            decimal(o.take_profit).map_err(|e| local(&e))?,
            None,
        );
        match self
            .place_protective(&tp, &filters, mark, o.position, Role::TakeProfit)
            .await
        {
            Ok((id, _)) => live.tp_id = Some(id),
            // The engine's own monitoring still closes at the target (reduce-only); the stop rests.
            Err(error) => {
                self.report(ExecReport::Problem(format!(
                    "{name}: take profit not placed ({error}); the engine closes at the target"
                )))
                .await;
            }
        }
        self.live.insert(o.position, live);
        self.report(ExecReport::Protected { position: o.position }).await;
        Ok(())
    }

    fn track(&mut self, client_id: &str, position: PositionId, role: Role, qty: Decimal) {
        self.by_client.insert(client_id.to_owned(), (position, role));
        self.book.track(TrackedOrder::new(client_id, qty));
    }

    async fn place_protective(
        &mut self,
        order: &NewOrder,
        filters: &SymbolFilters,
        mark: Decimal,
        position: PositionId,
        role: Role,
    ) -> Result<(String, Decimal), String> {
        self.place_protective_order(order, filters, mark, position, role)
            .await
            .map_err(|e| e.to_string())
    }

    /// Places a protective order (intent journalled by the client first); its id and its trigger
    /// price on the tick grid.
    async fn place_protective_order(
        &mut self,
        order: &NewOrder,
        filters: &SymbolFilters,
        mark: Decimal,
        position: PositionId,
        role: Role,
    ) -> Result<(String, Decimal), OrderError> {
        let order = order.rounded(filters, mark)?;
        let id = self.orders.next_client_order_id();
        self.track(&id, position, role, Decimal::ZERO);
        match self.orders.place_with_id(&order, &id).await? {
            Placed::Accepted(_) | Placed::Resolved(_) => Ok((id, order.stop_price.unwrap_or_default())),
            Placed::NotPlaced { .. } => Err(OrderError::Invalid(
                "not placed (unknown outcome resolved as absent)",
            )),
        }
    }

    /// The trailing stop of `position` moved to `stop`: the new stop is placed first, then the old
    /// one cancelled, so a stop rests on the venue at every moment. A move that does not tighten the
    /// resting stop by a tick at least (a late command, or less than a tick of movement) is skipped.
    /// When the venue refuses a second close-position stop in the same direction (`-4130`), the new
    /// stop is a reduce-only `STOP_MARKET` for the position's size instead. A refused move leaves the
    /// old stop resting (the engine's own monitoring still closes at the trailed level).
    async fn move_stop(&mut self, position: PositionId, stop: f64) {
        let Some(live) = self.live.get(&position).cloned() else {
            return;
        };
        let Some(filters) = self.filters.get(&live.symbol).cloned() else {
            return;
        };
        let Ok(wanted) = decimal(stop) else {
            return;
        };
        let exit = exit_side(live.side);
        let Ok(new_price) = filters.round_price(exit, wanted) else {
            return;
        };
        let tighter = match live.side {
            Side::Long => new_price > live.stop_price,
            Side::Short => live.stop_price.is_zero() || new_price < live.stop_price,
        };
        if !tighter {
            return;
        }
        let close_all = NewOrder::stop_market(&live.symbol, exit, new_price, None);
        let mut placed = self
            .place_protective_order(&close_all, &filters, new_price, position, Role::Stop)
            .await;
        if matches!(&placed, Err(e) if e.code() == Some(-4130)) && !live.qty.is_zero() {
            let sized = NewOrder::stop_market(&live.symbol, exit, new_price, Some(live.qty)).reduce_only();
            placed = self
                .place_protective_order(&sized, &filters, new_price, position, Role::Stop)
                .await;
        }
        let (id, price) = match placed {
            Ok(p) => p,
            Err(e) => {
                self.report(ExecReport::Problem(format!(
                    "{} {position}: trailing stop not moved on the venue ({e}); the stop at {} still rests",
                    live.symbol, live.stop_price
                )))
                .await;
                return;
            }
        };
        if let Some(old) = &live.stop_id
            && let Err(e) = self.orders.cancel(&live.symbol, old).await
        {
            // Both stops close the position: whichever fires first does, the other expires.
            self.report(ExecReport::Problem(format!(
                "{}: replaced stop {old} not cancelled: {e}",
                live.symbol
            )))
            .await;
        }
        if let Some(l) = self.live.get_mut(&position) {
            l.stop_id = Some(id);
            l.stop_price = price;
        }
        tracing::info!(%position, symbol = %live.symbol, from = %live.stop_price, to = %price, "execution: venue stop moved");
        self.report(ExecReport::StopMoved {
            position,
            stop: price.to_f64().unwrap_or(stop),
        })
        .await;
    }

    /// The engine closed `position`: reduce-only market exit of what filled, then cancel the stop and
    /// the target. Unknown positions (never mirrored, or already closed by the venue) need nothing.
    async fn close(&mut self, position: PositionId) {
        let Some(live) = self.live.remove(&position) else {
            return;
        };
        let mut exited = (Decimal::ZERO, Decimal::ZERO);
        if !live.qty.is_zero() {
            let exit = NewOrder::market(&live.symbol, exit_side(live.side), live.qty).reduce_only();
            let id = self.orders.next_client_order_id();
            self.track(&id, position, Role::Exit, live.qty);
            match self.orders.place_with_id(&exit, &id).await {
                Ok(p) => exited = p.order().map(fill_of).unwrap_or_default(),
                // -2022: reduce-only refused because there is nothing to reduce (the venue's stop or
                // target was first): already flat.
                Err(e) if e.code() == Some(-2022) => {}
                Err(e) => {
                    self.report(ExecReport::Problem(format!(
                        "{} {position}: reduce-only exit failed: {e} (the stop still rests on the venue)",
                        live.symbol
                    )))
                    .await;
                    // Keep it: the kill switch or a later close can still flatten it.
                    self.live.insert(position, live);
                    return;
                }
            }
        }
        self.cancel_protection(&live).await;
        self.report(ExecReport::Exited {
            position,
            qty: exited.0.to_f64().unwrap_or(0.0),
            avg_price: exited.1.to_f64().unwrap_or(0.0),
        })
        .await;
    }

    async fn cancel_protection(&self, live: &Live) {
        for id in [&live.stop_id, &live.tp_id].into_iter().flatten() {
            if let Err(e) = self.orders.cancel(&live.symbol, id).await {
                self.report(ExecReport::Problem(format!(
                    "{}: leftover protective order {id} not cancelled: {e}",
                    live.symbol
                )))
                .await;
            }
        }
    }

    /// The kill switch: cancel every open order, close every venue position reduce-only, check.
    async fn flatten(&mut self) {
        tracing::warn!("execution: kill switch, flattening everything on the venue");
        let (mut closed, mut cancelled, mut remaining) = (0, 0, usize::MAX);
        let mut last_error = None;
        for _ in 0..self.settings.flatten_rounds.max(1) {
            match self.flatten_round().await {
                Ok((c, x, left)) => {
                    closed += c;
                    cancelled += x;
                    remaining = left;
                    if left == 0 {
                        break;
                    }
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        self.live.clear();
        if let Some(e) = last_error.filter(|_| remaining != 0) {
            self.report(ExecReport::Problem(format!("kill switch: {e}")))
                .await;
        }
        self.report(ExecReport::Flattened {
            positions_closed: closed,
            orders_cancelled: cancelled,
            remaining,
        })
        .await;
    }

    /// One round: returns (positions closed, orders cancelled, positions + orders still open after).
    async fn flatten_round(&mut self) -> Result<(usize, usize, usize), OrderError> {
        let mut cancelled = 0;
        for o in self.orders.open_orders(None).await? {
            match self.orders.cancel(&o.symbol, &o.client_order_id).await {
                Ok(_) => cancelled += 1,
                Err(e) => tracing::warn!(symbol = %o.symbol, error = %e, "kill switch: cancel failed"),
            }
        }
        let mut closed = 0;
        for p in self.orders.position_risk().await? {
            let qty = parse(&p.position_amt);
            if qty.is_zero() {
                continue;
            }
            let side = if qty > Decimal::ZERO {
                OrderSide::Sell
            } else {
                OrderSide::Buy
            };
            let mut exit = NewOrder::market(&p.symbol, side, qty.abs()).reduce_only();
            if let Some(ps) = PositionSide::from_venue(&p.position_side).filter(|s| *s != PositionSide::Both)
            {
                exit = exit.with_position_side(ps);
            }
            match self.orders.place(&exit).await {
                Ok(_) => closed += 1,
                Err(e) if e.code() == Some(-2022) => {}
                Err(e) => tracing::warn!(symbol = %p.symbol, error = %e, "kill switch: exit failed"),
            }
        }
        let left = self.orders.open_orders(None).await?.len()
            + self
                .orders
                .position_risk()
                .await?
                .iter()
                .filter(|p| !parse(&p.position_amt).is_zero())
                .count();
        Ok((closed, cancelled, left))
    }

    /// Reconciles: positions and open orders fetched, orphaned reduce-only orders cancelled. A failure
    /// leaves the gate closed and the state unknown.
    async fn reconcile(&mut self) {
        let mut local = LocalBook::default();
        for l in self.live.values() {
            let signed = if l.side == Side::Long { l.qty } else { -l.qty };
            local
                .positions
                .insert((l.symbol.clone(), PositionSide::Both), signed);
            for id in [&l.stop_id, &l.tp_id].into_iter().flatten() {
                local.open_orders.push((l.symbol.clone(), id.clone()));
            }
        }
        match self.gate.reconcile(&self.orders, &local).await {
            Ok(report) => {
                for p in &report.positions {
                    self.book.set_position(&p.symbol, p.side, p.qty);
                }
                let adopted = self.adopt_pending(&report).await;
                let external = report
                    .external
                    .iter()
                    .filter(|p| !adopted.contains(&p.symbol))
                    .count();
                let mut detail = format!(
                    "{} venue positions ({external} not opened by this console, {} adopted from the journal), {} open orders, {} orphans cancelled",
                    report.positions.len(),
                    adopted.len(),
                    report.open_orders.len(),
                    report.orphans_cancelled.len()
                );
                if let Some(note) = self.load_brackets().await {
                    detail.push_str("; ");
                    detail.push_str(&note);
                }
                self.report_gate(GateState::Reconciled, detail).await;
            }
            Err(e) => self.report_gate(GateState::Unknown, e.to_string()).await,
        }
    }

    /// Loads the account's leverage brackets (every symbol, one request) unless that already worked,
    /// and reports them for the symbols the console knows. Returns what to add to the gate's message.
    /// A failure keeps the engine on the conservative default and is retried at the next
    /// reconciliation; it never holds the gate.
    async fn load_brackets(&mut self) -> Option<String> {
        if self.brackets_loaded {
            return None;
        }
        match self.orders.leverage_brackets(None).await {
            Ok(entries) => {
                let (mut tables, mut refused) = (Vec::new(), Vec::new());
                if let Ok(table) = self.table.read() {
                    for wire in &entries {
                        // Symbols the console does not track are not needed.
                        let Some(id) = table.id(&wire.symbol) else {
                            continue;
                        };
                        match BracketTable::from_wire(wire) {
                            Ok(t) => tables.push((id, t)),
                            Err(e) => refused.push(e.to_string()),
                        }
                    }
                }
                self.brackets_loaded = true;
                let note = if refused.is_empty() {
                    format!("leverage brackets of {} symbols loaded", tables.len())
                } else {
                    format!(
                        "leverage brackets of {} symbols loaded, {} refused (conservative default for those)",
                        tables.len(),
                        refused.len()
                    )
                };
                tracing::info!(
                    symbols = tables.len(),
                    refused = refused.len(),
                    "execution: leverage brackets loaded"
                );
                self.report(ExecReport::Brackets { tables, refused }).await;
                Some(note)
            }
            Err(e) => {
                tracing::warn!(error = %e, "leverage brackets not loaded; the conservative default stays");
                let error = e.to_string();
                self.report(ExecReport::BracketsUnavailable { error: error.clone() })
                    .await;
                Some(format!(
                    "leverage brackets not loaded ({error}): the conservative default caps leverage"
                ))
            }
        }
    }

    /// Matches the journal-restored positions waiting for adoption with what the reconciliation
    /// found: the venue position of the symbol (same direction) becomes ours with its resting
    /// protective orders; a missing stop or target is placed again; a position the venue no longer
    /// holds is reported for the engine to close. Returns the symbols adopted. Venue positions that
    /// match nothing stay external: reported, never touched (the kill switch still flattens them).
    async fn adopt_pending(&mut self, report: &ReconReport) -> Vec<String> {
        let mut adopted = Vec::new();
        let pending = std::mem::take(&mut self.adopting);
        for (position, a) in pending {
            let Some(name) = self.name_of(a.symbol) else {
                self.report(ExecReport::Problem(format!(
                    "restored position {position}: symbol #{} unknown to the venue; not mirrored",
                    a.symbol.0
                )))
                .await;
                continue;
            };
            if self.live.values().any(|l| l.symbol == name) {
                self.report(ExecReport::Problem(format!(
                    "restored position {position}: {name} already has a live position (one-way mode); not mirrored"
                )))
                .await;
                continue;
            }
            let want_long = a.side == Side::Long;
            let venue = report
                .positions
                .iter()
                .find(|p| p.symbol == name && !p.qty.is_zero() && (p.qty > Decimal::ZERO) == want_long);
            let Some(venue) = venue else {
                let mark = self.mark_of(&name).await;
                let other_way = report.positions.iter().any(|p| p.symbol == name);
                let detail = if other_way {
                    format!("{name} is held the other way on the venue (left alone as external)")
                } else {
                    format!("{name} is flat on the venue")
                };
                self.report(ExecReport::AdoptedFlat {
                    position,
                    mark: mark.unwrap_or(0.0),
                    detail,
                })
                .await;
                continue;
            };
            let qty = venue.qty.abs();
            let exit = exit_side(a.side);
            let mut live = Live {
                symbol: name.clone(),
                side: a.side,
                qty,
                stop_id: None,
                stop_price: Decimal::ZERO,
                tp_id: None,
            };
            for o in report.open_orders.iter().filter(|o| {
                o.symbol == name && (o.close_position || o.reduce_only) && o.side == exit.as_str()
            }) {
                let kind = if o.order_type.is_empty() {
                    o.orig_type.as_str()
                } else {
                    o.order_type.as_str()
                };
                let (slot, role) = match kind {
                    "STOP_MARKET" => (&mut live.stop_id, Role::Stop),
                    "TAKE_PROFIT_MARKET" => (&mut live.tp_id, Role::TakeProfit),
                    _ => continue,
                };
                if slot.is_none() {
                    if role == Role::Stop {
                        live.stop_price = parse(&o.stop_price);
                    }
                    *slot = Some(o.client_order_id.clone());
                    self.by_client.insert(o.client_order_id.clone(), (position, role));
                    self.book
                        .track(TrackedOrder::new(&o.client_order_id, Decimal::ZERO));
                }
            }
            let mut replaced = Vec::new();
            let filters = self.filters.get(&name).cloned();
            let mark = venue.entry_price;
            if live.stop_id.is_none() {
                let placed = match (&filters, decimal(a.stop_loss)) {
                    (Some(f), Ok(stop)) => {
                        let order = NewOrder::stop_market(&name, exit, stop, None);
                        self.place_protective(&order, f, mark, position, Role::Stop).await
                    }
                    (None, _) => Err(ExecError::UnknownSymbol(name.clone()).to_string()),
                    (_, Err(e)) => Err(e.to_string()),
                };
                match placed {
                    Ok((id, price)) => {
                        live.stop_id = Some(id);
                        live.stop_price = price;
                        replaced.push("stop");
                    }
                    Err(error) => {
                        // Same rule as a fresh position: nothing unprotected stays open.
                        self.live.insert(position, live);
                        self.close(position).await;
                        self.report(ExecReport::ProtectionFailed {
                            position,
                            error: format!("restored position, stop: {error}"),
                        })
                        .await;
                        continue;
                    }
                }
            }
            if live.tp_id.is_none() {
                let placed = match (&filters, decimal(a.take_profit)) {
                    (Some(f), Ok(tp)) => {
                        let order = NewOrder::take_profit_market(&name, exit, tp, None);
                        self.place_protective(&order, f, mark, position, Role::TakeProfit)
                            .await
                    }
                    (None, _) => Err(ExecError::UnknownSymbol(name.clone()).to_string()),
                    (_, Err(e)) => Err(e.to_string()),
                };
                match placed {
                    Ok((id, _)) => {
                        live.tp_id = Some(id);
                        replaced.push("take profit");
                    }
                    Err(error) => {
                        self.report(ExecReport::Problem(format!(
                            "{name}: take profit of restored position {position} not placed ({error}); the engine closes at the target"
                        )))
                        .await;
                    }
                }
            }
            if (qty.to_f64().unwrap_or(0.0) - a.qty).abs() > a.qty.abs() * 1e-6 {
                tracing::warn!(%position, journal = a.qty, venue = %qty, "restored position size differs on the venue; the venue's size is exited");
            }
            tracing::info!(%position, symbol = %name, ?replaced, "execution: restored position adopted");
            self.live.insert(position, live);
            adopted.push(name);
            self.report(ExecReport::Adopted {
                position,
                qty: qty.to_f64().unwrap_or(0.0),
                replaced,
            })
            .await;
        }
        adopted
    }

    /// The venue's current mark price of `symbol` (`positionRisk` lists it for a flat symbol on
    /// the real venue; the public `premiumIndex` otherwise), if either answers.
    async fn mark_of(&self, symbol: &str) -> Option<f64> {
        let positive = |m: &str| m.parse::<f64>().ok().filter(|m| *m > 0.0);
        if let Ok(risk) = self.orders.position_risk().await
            && let Some(m) = risk
                .iter()
                .find(|p| p.symbol == symbol)
                .and_then(|p| positive(&p.mark_price))
        {
            return Some(m);
        }
        let index = self.public.premium_index().await.ok()?;
        index
            .iter()
            .find(|p| p.symbol == symbol)
            .and_then(|p| positive(&p.mark_price))
    }

    async fn on_user(&mut self, ev: UserStreamEvent) {
        match ev {
            UserStreamEvent::Connected { .. } => {
                self.stream_up = true;
                // Events sent while disconnected are gone: reconcile before any new entry.
                self.gate.invalidate("user stream (re)connected");
                self.reconcile().await;
            }
            UserStreamEvent::Disconnected => {
                self.stream_up = false;
                self.gate.invalidate("user stream disconnected");
                if self.gate_reported != Some(GateState::Pending) {
                    self.report_gate(GateState::Pending, "user stream disconnected".into())
                        .await;
                }
            }
            UserStreamEvent::BadFrame => {}
            UserStreamEvent::Event(e) => match self.book.apply(&e) {
                Ok(BookChange::Fill {
                    client_order_id,
                    origin: OrderOrigin::Client,
                    ..
                }) => self.on_fill(&client_order_id).await,
                Ok(BookChange::Fill { symbol, origin, .. }) => {
                    self.report(ExecReport::Problem(format!(
                        "{symbol}: venue-generated fill ({origin:?}); reconcile to see the position"
                    )))
                    .await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "user-stream event skipped"),
            },
        }
    }

    /// A fill of one of our orders: entries update the position's real size and price; a filled stop
    /// or target means the venue closed the position, so its sibling is cancelled.
    async fn on_fill(&mut self, client_order_id: &str) {
        let Some(&(position, role)) = self.by_client.get(client_order_id) else {
            return;
        };
        let Some(order) = self.book.order(client_order_id) else {
            return;
        };
        let (filled, avg) = (order.filled(), order.avg_price());
        match role {
            Role::Entry => {
                if let Some(live) = self.live.get_mut(&position) {
                    live.qty = filled;
                }
                self.report(ExecReport::EntryFilled {
                    position,
                    qty: filled.to_f64().unwrap_or(0.0),
                    avg_price: avg.to_f64().unwrap_or(0.0),
                })
                .await;
            }
            Role::Stop | Role::TakeProfit => {
                let Some(live) = self.live.remove(&position) else {
                    return;
                };
                let sibling = if role == Role::Stop {
                    &live.tp_id
                } else {
                    &live.stop_id
                };
                if let Some(id) = sibling
                    && let Err(e) = self.orders.cancel(&live.symbol, id).await
                {
                    tracing::warn!(symbol = %live.symbol, error = %e, "leftover protective order not cancelled");
                }
                self.report(ExecReport::VenueExit {
                    position,
                    take_profit: role == Role::TakeProfit,
                    price: avg.to_f64().unwrap_or(0.0),
                })
                .await;
            }
            Role::Exit => {}
        }
    }

    /// Positions mirrored on the venue (tests and the status bar).
    pub fn live_positions(&self) -> usize {
        self.live.len()
    }

    /// The reconciliation gate.
    pub fn gate(&self) -> &ReconciliationGate {
        &self.gate
    }

    /// The order client (tests query the venue with the same key).
    #[cfg(test)]
    pub(crate) fn orders_for_tests(&self) -> &OrderClient {
        &self.orders
    }

    /// Reconciles now (start-up without a user stream, tests).
    pub async fn reconcile_now(&mut self) {
        self.reconcile().await;
    }
}

/// The fields of [`ExecCommand::Adopt`] but the position id.
#[derive(Debug, Clone, Copy)]
struct AdoptRequest {
    symbol: SymbolId,
    side: Side,
    qty: f64,
    stop_loss: f64,
    take_profit: f64,
}

/// The fields of [`ExecCommand::Open`].
#[derive(Debug, Clone, Copy)]
struct OpenRequest {
    position: PositionId,
    symbol: SymbolId,
    side: Side,
    qty: f64,
    mark: f64,
    leverage: u16,
    stop_loss: f64,
    take_profit: f64,
}
