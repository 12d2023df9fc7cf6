"""Drive perpdesk's simulated exchange with Binance's own (third-party) Python connector, unchanged.

Usage: python3 binance_connector_check.py REST_BASE_URL WS_BASE_URL
Prints one JSON line with what it saw and exits 0 only if every check passed. Run by
tests/third_party_client.rs; needs the `binance-futures-connector` package (4.2.0) on PYTHONPATH.
"""

import json
import sys
import threading

from binance.error import ClientError
from binance.um_futures import UMFutures
from binance.websocket.um_futures.websocket_client import UMFuturesWebsocketClient


def main() -> int:
    rest_url, ws_url = sys.argv[1], sys.argv[2]
    client = UMFutures(base_url=rest_url)
    seen = {}

    server_time = client.time()["serverTime"]
    assert isinstance(server_time, int), server_time

    info = client.exchange_info()
    symbols = info["symbols"]
    seen["symbols"] = len(symbols)
    assert len(symbols) >= 250, len(symbols)
    perps = [s for s in symbols if s["contractType"] == "PERPETUAL" and s["quoteAsset"] == "USDT" and s["status"] == "TRADING"]
    seen["tradable_usdt_perpetuals"] = len(perps)
    assert len(perps) >= 200, len(perps)
    weight = [r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    assert weight and weight[0]["limit"] > 0, info["rateLimits"]
    filters = {f["filterType"] for f in perps[0]["filters"]}
    assert {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MIN_NOTIONAL", "PERCENT_PRICE", "MAX_NUM_ORDERS"} <= filters, filters

    tickers = client.ticker_24hr_price_change()
    seen["tickers"] = len(tickers)
    assert len(tickers) >= 200
    top = max(tickers, key=lambda t: float(t["quoteVolume"]))
    assert isinstance(top["lastPrice"], str) and float(top["lastPrice"]) > 0, top
    one = client.ticker_24hr_price_change(symbol=top["symbol"])
    assert one["symbol"] == top["symbol"], one

    symbol = perps[0]["symbol"]
    latest = client.klines(symbol, "1h", limit=10)
    assert len(latest) == 10, len(latest)
    row = latest[-1]
    assert isinstance(row[0], int) and isinstance(row[1], str) and isinstance(row[8], int), row
    opens = [k[0] for k in latest]
    assert opens == sorted(opens) and all(b - a == 3_600_000 for a, b in zip(opens, opens[1:])), opens
    # startTime / endTime / limit as on Binance.
    start = opens[2]
    ranged = client.klines(symbol, "1h", startTime=start, limit=3)
    assert [k[0] for k in ranged] == opens[2:5], ranged
    ended = client.klines(symbol, "1h", endTime=opens[5], limit=2)
    assert [k[0] for k in ended] == opens[4:6], ended
    capped = client.klines(symbol, "1m", limit=5000)
    seen["klines_limit_5000"] = len(capped)
    assert len(capped) == 1500, len(capped)
    seen["five_minute_klines"] = len(client.klines(symbol, "5m", limit=499))

    mark = client.mark_price(symbol=symbol)
    assert float(mark["markPrice"]) > 0, mark

    try:
        client.klines("NOPEUSDT", "1m")
        raise AssertionError("unknown symbol accepted")
    except ClientError as e:
        seen["unknown_symbol_error"] = e.error_code
        assert e.status_code == 400 and e.error_code == -1121, (e.status_code, e.error_code)

    # WebSocket: the connector's combined-stream client, live SUBSCRIBE of a kline stream.
    got = threading.Event()
    frames = []

    def on_message(_, message):
        data = json.loads(message)
        if data.get("stream") == f"{symbol.lower()}@kline_1m":
            frames.append(data)
            got.set()

    ws = UMFuturesWebsocketClient(stream_url=ws_url, on_message=on_message, is_combined=True)
    try:
        ws.kline(symbol=symbol, interval="1m")
        assert got.wait(15), "no kline frame within 15 s"
    finally:
        ws.stop()
    k = frames[0]["data"]["k"]
    assert k["s"] == symbol and k["i"] == "1m" and isinstance(k["x"], bool) and isinstance(k["c"], str), k
    seen["ws_kline_frames"] = len(frames)

    print(json.dumps({"ok": True, **seen}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
