"""Signed trading on perpdesk's simulated exchange with Binance's own Python connector, unchanged.

Usage: python3 binance_connector_signed_check.py REST_BASE_URL API_KEY API_SECRET
Sets leverage, places a resting LIMIT order (HMAC-signed, timestamp + recvWindow), queries it by id and
by client order id, lists open orders, cancels it, opens and closes a position with MARKET orders,
reads balance / account / position risk and a listenKey, and checks that a wrong secret is refused
with -1022. Prints one JSON line; exits 0 only if every check passed. Run by
tests/third_party_client.rs.
"""

import json
import sys
from decimal import Decimal, ROUND_DOWN

from binance.error import ClientError
from binance.um_futures import UMFutures


def main() -> int:
    rest_url, key, secret = sys.argv[1], sys.argv[2], sys.argv[3]
    client = UMFutures(key=key, secret=secret, base_url=rest_url)
    seen = {}

    info = client.exchange_info()
    perp = next(s for s in info["symbols"]
                if s["contractType"] == "PERPETUAL" and s["quoteAsset"] == "USDT" and s["status"] == "TRADING")
    symbol = perp["symbol"]
    f = {x["filterType"]: x for x in perp["filters"]}
    tick = Decimal(f["PRICE_FILTER"]["tickSize"])
    step = Decimal(f["LOT_SIZE"]["stepSize"])
    min_notional = Decimal(f["MIN_NOTIONAL"]["notional"])
    mark = Decimal(client.mark_price(symbol=symbol)["markPrice"])

    lev = client.change_leverage(symbol=symbol, leverage=5)
    assert lev["leverage"] == 5, lev

    price = (mark * Decimal("0.97") / tick).to_integral_value(ROUND_DOWN) * tick
    qty = ((min_notional * 3) / price / step).to_integral_value(ROUND_DOWN) * step + step
    order = client.new_order(symbol=symbol, side="BUY", type="LIMIT", quantity=str(qty), price=str(price),
                             timeInForce="GTC", newClientOrderId="third-party-1")
    assert order["status"] == "NEW" and order["clientOrderId"] == "third-party-1", order
    seen["placed_order_id"] = order["orderId"]

    by_id = client.query_order(symbol=symbol, orderId=order["orderId"])
    assert by_id["clientOrderId"] == "third-party-1" and by_id["status"] == "NEW", by_id
    by_client = client.query_order(symbol=symbol, origClientOrderId="third-party-1")
    assert by_client["orderId"] == order["orderId"], by_client
    opened = client.get_open_orders(symbol=symbol, orderId=order["orderId"])
    assert opened["orderId"] == order["orderId"], opened

    cancelled = client.cancel_order(symbol=symbol, orderId=order["orderId"])
    assert cancelled["status"] == "CANCELED", cancelled
    seen["cancelled"] = cancelled["status"]
    try:
        client.query_order(symbol=symbol, origClientOrderId="nope-never-placed")
        raise AssertionError("unknown order found")
    except ClientError as e:
        assert e.error_code == -2013, (e.status_code, e.error_code)

    buy = client.new_order(symbol=symbol, side="BUY", type="MARKET", quantity=str(qty))
    assert buy["status"] == "FILLED", buy
    risk = [p for p in client.get_position_risk(symbol=symbol) if p["symbol"] == symbol]
    assert risk and Decimal(risk[0]["positionAmt"]) == qty, risk
    sell = client.new_order(symbol=symbol, side="SELL", type="MARKET", quantity=str(qty), reduceOnly="true")
    assert sell["status"] == "FILLED", sell
    try:
        client.new_order(symbol=symbol, side="SELL", type="MARKET", quantity=str(qty), reduceOnly="true")
        raise AssertionError("reduce-only without a position accepted")
    except ClientError as e:
        seen["reduce_only_error"] = e.error_code

    balance = client.balance()
    assert balance[0]["asset"] == "USDT", balance
    account = client.account()
    assert Decimal(account["totalWalletBalance"]) > 0, account
    listen_key = client.new_listen_key()["listenKey"]
    assert len(listen_key) == 64, listen_key
    client.renew_listen_key(listenKey=listen_key)

    wrong = UMFutures(key=key, secret=secret + "-wrong", base_url=rest_url)
    try:
        wrong.new_order(symbol=symbol, side="BUY", type="LIMIT", quantity=str(qty), price=str(price),
                        timeInForce="GTC")
        raise AssertionError("wrong signature accepted")
    except ClientError as e:
        seen["wrong_signature_error"] = e.error_code
        assert e.status_code == 400 and e.error_code == -1022, (e.status_code, e.error_code)

    print(json.dumps({"ok": True, **seen}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
