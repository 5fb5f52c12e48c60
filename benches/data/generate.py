"""Writes N order rows (about 70 bytes each) and 100,000 customers as CSV,
with a known defect mix. Of every 1,000 orders: 1 has no order id, 1 a
non-numeric amount, 1 a negative amount, 1 a bad status, 1 a bad e-mail,
1 an unknown customer, 1 a quantity out of range, 2 have two defects (a bad
status and a bad e-mail), and 10 reuse the order id of the row 20 before
them (from the second thousand on), so 20 rows share a key with another.

Usage: python3 generate.py N OUT_DIR
"""
import os
import sys

n = int(sys.argv[1])
out = sys.argv[2]
os.makedirs(f"{out}/orders", exist_ok=True)
with open(f"{out}/customers.csv", "w") as f:
    f.write("customer_id,name,country\n")
    f.writelines(f"{i},customer {i},{('GB','FR','DE','ES','IT')[i % 5]}\n" for i in range(1, 100_001))

statuses = ("new", "paid", "shipped", "cancelled")
currencies = ("EUR", "USD", "GBP")
channels = ("web", "store", "phone")
with open(f"{out}/orders/orders.csv", "w", buffering=1 << 22) as f:
    f.write("order_id,customer_id,day,amount,status,email,currency,quantity,channel\n")
    lines = []
    for i in range(n):
        k = i % 1000
        order_id = str(i + 1)
        customer = (i * 7919) % 100_000 + 1
        amount = f"{(i % 50_000) / 100 + 1:.2f}"
        status = statuses[i % 4]
        email = f"user{customer}@example.com"
        quantity = (i % 20) + 1
        if k == 1:
            amount = "n/a"
        elif k == 2:
            amount = "-3.50"
        elif k == 3:
            status = "lost"
        elif k == 4:
            email = "not-an-email"
        elif k == 5:
            order_id = ""
        elif k == 6:
            customer = 999_999_999
        elif k == 7:
            quantity = 5000
        elif k in (8, 9):
            status, email = "lost", "broken@"
        elif 10 <= k < 20 and i >= 1000:
            order_id = str(i + 1 - 20)  # the id of a row 20 earlier (k = 990..999)
        lines.append(f"{order_id},{customer},2026-01-{(i % 28) + 1:02d},{amount},{status},{email},{currencies[i % 3]},{quantity},{channels[i % 3]}\n")
        if len(lines) == 100_000:
            f.writelines(lines)
            lines = []
    f.writelines(lines)
